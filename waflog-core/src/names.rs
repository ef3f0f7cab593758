//! Every field name waflog reads or writes, in one place.
//!
//! WAF field names follow the AWS WAF v2 log record (`httpRequest.clientIp`);
//! indicator names are exactly the seed system's (`K_country`, `UNK_country`, ...),
//! so dashboards and detectors built for it keep working.

/// Epoch-millisecond time of the request.
pub const TIMESTAMP: &str = "timestamp";
/// Terminating action (`ALLOW`, `BLOCK`, `CAPTCHA`, `CHALLENGE`; any case on input).
pub const ACTION: &str = "action";
/// Source service of the request (`CF`, `ALB`, `APIGW`, ... or `-`).
pub const HTTP_SOURCE_NAME: &str = "httpSourceName";
/// Identifier of the source resource.
pub const HTTP_SOURCE_ID: &str = "httpSourceId";
/// The seed simulator's origin status extension (a string such as `"200"`).
pub const HTTP_STATUS: &str = "httpStatus";
/// Status of a custom response sent by WAF itself (`null` otherwise).
pub const RESPONSE_CODE_SENT: &str = "responseCodeSent";
/// Object with the request's details.
pub const HTTP_REQUEST: &str = "httpRequest";
/// `httpRequest.country`: ISO 3166-1 alpha-2 code, or `-` when unknown.
pub const COUNTRY: &str = "country";
/// `httpRequest.httpMethod`.
pub const HTTP_METHOD: &str = "httpMethod";
/// `httpRequest.clientIp`.
pub const CLIENT_IP: &str = "clientIp";

/// Indicator: country is in the known list.
pub const K_COUNTRY: &str = "K_country";
/// Indicator: country is not in the known list.
pub const UNK_COUNTRY: &str = "UNK_country";
/// Indicator: action is in the known (good) list.
pub const K_ACTION: &str = "K_action";
/// Indicator: action is in the bad list.
pub const B_ACTION: &str = "B_action";
/// Indicator: status is in the ok classes (default 1xx-4xx).
pub const O_HTTPSTATUS: &str = "O_httpstatus";
/// Indicator: status is in the bad classes (default 5xx).
pub const B_HTTPSTATUS: &str = "B_httpstatus";
/// Indicator: method is common.
pub const COMMON_METHOD: &str = "common_method";
/// Indicator: method is not common.
pub const UNCOMMON_METHOD: &str = "uncommon_method";
/// Indicator: source is known.
pub const K_SOURCE: &str = "K_source";
/// Indicator: source is not known.
pub const UNK_SOURCE: &str = "UNK_source";

/// All ten indicator names, in the order waflog writes them.
pub const INDICATORS: [&str; 10] = [
    K_COUNTRY,
    UNK_COUNTRY,
    K_ACTION,
    B_ACTION,
    O_HTTPSTATUS,
    B_HTTPSTATUS,
    COMMON_METHOD,
    UNCOMMON_METHOD,
    K_SOURCE,
    UNK_SOURCE,
];
