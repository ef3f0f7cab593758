//! The record generator: a seeded Poisson process writing NDJSON bytes directly.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::profile::{SimField, Weighted};
use super::{EpisodeKind, Limit, Scenario};
use crate::error::ScenarioError;
use crate::parse::schema::Action;

const DAY_MS: f64 = 86_400_000.0;
/// The daily cycle peaks at 14:00 UTC: sin(2*pi*(h - 8)/24) is 1 at h = 14.
const DIURNAL_PHASE_MS: f64 = 8.0 * 3_600_000.0;
/// Client IPs per country value.
const POOL_SIZE: usize = 256;
const ACCOUNT: &str = "123456789012";

/// A bijective 64-bit mixer (the splitmix64 finaliser): distinct inputs give distinct
/// outputs, which is what makes request IDs unique.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A public-looking IPv4 address derived from `h` (skips private, loopback,
/// link-local, CGNAT and multicast ranges).
fn ip_from_hash(mut h: u64) -> String {
    loop {
        let [a, b, c, d] = ((h >> 16) as u32).to_be_bytes();
        let reserved = matches!(a, 0 | 10 | 127 | 224..=255)
            || (a == 100 && (64..128).contains(&b))
            || (a == 169 && b == 254)
            || (a == 172 && (16..32).contains(&b))
            || (a == 192 && b == 168)
            || d == 0;
        if !reserved {
            return format!("{a}.{b}.{c}.{d}");
        }
        h = mix(h.wrapping_add(1));
    }
}

/// The flooding client of episode `index` in a scenario with `seed`.
pub(crate) fn flood_ip(seed: u64, index: usize) -> String {
    ip_from_hash(mix(seed ^ 0xf100_d000_0000_0000 ^ index as u64))
}

fn json_str(s: &str) -> Vec<u8> {
    // Serialising a &str cannot fail.
    serde_json::to_vec(s).unwrap_or_else(|_| b"\"\"".to_vec())
}

/// Pre-rendered JSON of one field's values, with its samplers.
#[derive(Debug, Clone)]
struct FieldTable {
    json: Vec<Vec<u8>>,
    raw: Vec<String>,
    normal: Weighted,
    anomalous: Weighted,
}

#[derive(Debug, Clone)]
struct Flood {
    start: f64,
    end: f64,
    next: f64,
    rate_max: f64,
    ip: Vec<u8>,
}

/// Paths requested, per method.
const GET_PATHS: [(&str, &str); 10] = [
    ("/", ""),
    ("/index.html", ""),
    ("/products", "page=2"),
    ("/api/v1/products", "id=1042"),
    ("/api/v1/cart", ""),
    ("/static/app.js", "v=3.2.1"),
    ("/static/styles.css", ""),
    ("/images/logo.png", ""),
    ("/search", "q=shoes&sort=price"),
    ("/account/orders", ""),
];
const POST_PATHS: [(&str, &str); 4] = [
    ("/api/v1/cart", ""),
    ("/login", ""),
    ("/api/v1/orders", ""),
    ("/graphql", ""),
];
const HEAD_PATHS: [(&str, &str); 2] = [("/", ""), ("/health", "")];
const OTHER_PATHS: [(&str, &str); 2] = [("/api/v1/cart/items/17", ""), ("/api/v1/session", "")];
const USER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4) Mobile/15E148",
    "curl/8.5.0",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
];
const FLOOD_USER_AGENT: &str = "python-requests/2.31.0";

/// Generates the records of a [`Scenario`], one NDJSON line at a time.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Pcg64Mcg,
    seed: u64,
    start: f64,
    end: Option<f64>,
    count_limit: Option<u64>,
    emitted: u64,
    rate_max_ms: f64,
    diurnal: f64,
    next_base: f64,
    floods: Vec<Flood>,
    /// (field, start, end, intensity) of field episodes.
    field_episodes: Vec<(SimField, f64, f64, f64)>,
    tables: [FieldTable; 5],
    source_ids: Vec<Vec<u8>>,
    hosts: Vec<&'static str>,
    actions: Vec<Option<Action>>,
    pools: Vec<Vec<Vec<u8>>>,
    webacl_regional: Vec<u8>,
    webacl_global: Vec<u8>,
}

impl Generator {
    /// A generator for `scenario`; fails when the scenario is invalid.
    pub fn new(scenario: &Scenario) -> Result<Generator, ScenarioError> {
        scenario.validate()?;
        scenario
            .profile
            .validate(std::path::Path::new("<profile>"))
            .map_err(|e| ScenarioError::Invalid {
                field: "profile",
                reason: e.to_string(),
            })?;
        let seed = scenario.seed;
        let start = scenario.start_ms as f64;
        let rate_ms = scenario.rate / 1000.0;
        let diurnal = scenario.diurnal;
        let table = |f: SimField| {
            let p = scenario.profile.field(f);
            FieldTable {
                json: p.values.iter().map(|v| json_str(v)).collect(),
                raw: p.values.clone(),
                normal: Weighted::new(&p.normal),
                anomalous: Weighted::new(&p.anomalous),
            }
        };
        let tables = SimField::ALL.map(table);
        let sources = &tables[SimField::HttpSourceName as usize].raw;
        let source_ids = sources
            .iter()
            .map(|s| json_str(&s.to_lowercase()))
            .collect();
        let hosts = sources
            .iter()
            .map(|s| match s.as_str() {
                "APIGW" => "api.example.com",
                "APPSYNC" => "graphql.example.com",
                _ => "www.example.com",
            })
            .collect();
        let actions = tables[SimField::Action as usize]
            .raw
            .iter()
            .map(|a| Action::parse(a))
            .collect();
        let countries = &tables[SimField::Country as usize].raw;
        let pools = (0..countries.len())
            .map(|c| {
                (0..POOL_SIZE)
                    .map(|k| {
                        let h = mix(seed ^ mix(((c as u64) << 32) | k as u64));
                        format!("\"{}\"", ip_from_hash(h)).into_bytes()
                    })
                    .collect()
            })
            .collect();
        let uuid = {
            let (a, b) = (mix(seed ^ 0xac1), mix(seed ^ 0xac2));
            format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            )
        };
        let webacl = |scope: &str, region: &str| {
            format!("\"arn:aws:wafv2:{region}:{ACCOUNT}:{scope}/webacl/waflog-demo/{uuid}\"")
                .into_bytes()
        };
        let mut field_episodes = Vec::new();
        let mut floods = Vec::new();
        for (i, e) in scenario.episodes.iter().enumerate() {
            let s = start + e.offset_ms as f64;
            let end = s + e.duration_ms as f64;
            match e.kind {
                EpisodeKind::Field(f) => field_episodes.push((f, s, end, e.intensity)),
                EpisodeKind::Flood { multiplier } => floods.push(Flood {
                    start: s,
                    end,
                    next: s,
                    rate_max: (multiplier - 1.0) * rate_ms * (1.0 + diurnal),
                    ip: format!("\"{}\"", flood_ip(seed, i)).into_bytes(),
                }),
            }
        }
        let (end, count_limit) = match scenario.limit {
            Limit::Duration(d) => (Some(start + d as f64), None),
            Limit::Count(n) => (None, Some(n)),
        };
        let mut g = Generator {
            rng: Pcg64Mcg::seed_from_u64(seed),
            seed,
            start,
            end,
            count_limit,
            emitted: 0,
            rate_max_ms: rate_ms * (1.0 + diurnal),
            diurnal,
            next_base: start,
            floods,
            field_episodes,
            tables,
            source_ids,
            hosts,
            actions,
            pools,
            webacl_regional: webacl("regional", "us-east-1"),
            webacl_global: webacl("global", "us-east-1"),
        };
        g.next_base = start + g.exp(g.rate_max_ms);
        for i in 0..g.floods.len() {
            let r = g.floods[i].rate_max;
            g.floods[i].next = g.floods[i].start + g.exp(r);
        }
        Ok(g)
    }

    /// Events emitted so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Simulated start, epoch milliseconds.
    pub fn start_ms(&self) -> i64 {
        self.start as i64
    }

    /// Simulated end for duration-limited scenarios, epoch milliseconds.
    pub fn end_ms(&self) -> Option<i64> {
        self.end.map(|e| e as i64)
    }

    /// The seed in use.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn exp(&mut self, rate_per_ms: f64) -> f64 {
        let u: f64 = self.rng.random();
        -(1.0 - u).ln() / rate_per_ms
    }

    /// Rate multiplier of the daily cycle at time `t`.
    fn daily(&self, t: f64) -> f64 {
        if self.diurnal == 0.0 {
            return 1.0;
        }
        let phase = (t - DIURNAL_PHASE_MS).rem_euclid(DAY_MS) / DAY_MS;
        1.0 + self.diurnal * (std::f64::consts::TAU * phase).sin()
    }

    /// Appends the next record (with its newline) to `out` and returns its timestamp,
    /// or `None` when the scenario is over.
    pub fn next_record(&mut self, out: &mut Vec<u8>) -> Option<i64> {
        if self.count_limit.is_some_and(|n| self.emitted >= n) {
            return None;
        }
        loop {
            // The earliest pending candidate: the base process or a flood.
            let mut which = None;
            let mut t = self.next_base;
            for (i, f) in self.floods.iter().enumerate() {
                if f.next < t {
                    t = f.next;
                    which = Some(i);
                }
            }
            if self.end.is_some_and(|e| t >= e) {
                return None;
            }
            // Thinning (Lewis & Shedler 1979): candidates come at the peak rate and are
            // kept with probability rate(t) / peak, which yields a Poisson process whose
            // rate follows the daily cycle.
            let keep = if self.diurnal > 0.0 {
                let u: f64 = self.rng.random();
                u * (1.0 + self.diurnal) < self.daily(t)
            } else {
                true
            };
            let flood_ip = match which {
                None => {
                    self.next_base = t + self.exp(self.rate_max_ms);
                    None
                }
                Some(i) => {
                    let r = self.floods[i].rate_max;
                    self.floods[i].next = t + self.exp(r);
                    if t >= self.floods[i].end {
                        self.floods[i].next = f64::INFINITY;
                        continue;
                    }
                    Some(i)
                }
            };
            if !keep {
                continue;
            }
            let ts = t.floor() as i64;
            self.write_record(ts, flood_ip, out);
            self.emitted += 1;
            return Some(ts);
        }
    }

    /// Draws field `f`'s value index at time `t`.
    fn draw(&mut self, f: SimField, t: f64) -> usize {
        let mut intensity = 0.0_f64;
        for &(ef, s, e, i) in &self.field_episodes {
            if ef == f && t >= s && t < e {
                intensity = intensity.max(i);
            }
        }
        let anomalous =
            intensity > 0.0 && (intensity >= 1.0 || self.rng.random::<f64>() < intensity);
        let u: f64 = self.rng.random();
        let table = &self.tables[f as usize];
        if anomalous {
            table.anomalous.pick(u)
        } else {
            table.normal.pick(u)
        }
    }

    fn write_record(&mut self, ts: i64, flood: Option<usize>, out: &mut Vec<u8>) {
        let t = ts as f64;
        let action = self.draw(SimField::Action, t);
        let source = self.draw(SimField::HttpSourceName, t);
        let status = self.draw(SimField::HttpStatus, t);
        let mut country = self.draw(SimField::Country, t);
        let method = self.draw(SimField::HttpMethod, t);
        let r = self.rng.random::<u64>();
        let ip: &[u8] = match flood {
            Some(i) => {
                country = 0;
                &self.floods[i].ip
            }
            None => {
                // Skewed popularity: a few clients send most requests.
                let u = (r & 0xffff) as f64 / 65536.0;
                let k = ((u * u * u) * POOL_SIZE as f64) as usize;
                &self.pools[country][k.min(POOL_SIZE - 1)]
            }
        };
        let method_raw = self.tables[SimField::HttpMethod as usize].raw[method].as_str();
        let paths: &[(&str, &str)] = match (flood, method_raw) {
            (Some(_), _) => &POST_PATHS[1..2],
            (None, "GET") => &GET_PATHS,
            (None, "POST") => &POST_PATHS,
            (None, "HEAD") => &HEAD_PATHS,
            _ => &OTHER_PATHS,
        };
        let (uri, args) = paths[((r >> 16) % paths.len() as u64) as usize];
        let ua = match flood {
            Some(_) => FLOOD_USER_AGENT,
            None => USER_AGENTS[((r >> 24) % USER_AGENTS.len() as u64) as usize],
        };
        let request_seq = mix(self.emitted ^ mix(self.seed));
        let request_rand = r >> 32;

        let tb = &self.tables;
        let source_raw = tb[SimField::HttpSourceName as usize].raw[source].as_str();
        let webacl = if source_raw == "CF" {
            &self.webacl_global
        } else {
            &self.webacl_regional
        };
        let mut num = itoa::Buffer::new();

        out.extend_from_slice(b"{\"timestamp\":");
        out.extend_from_slice(num.format(ts).as_bytes());
        out.extend_from_slice(b",\"formatVersion\":1,\"webaclId\":");
        out.extend_from_slice(webacl);
        let (rule_id, rule_type) = match self.actions[action] {
            Some(Action::Block) => ("AWS-AWSManagedRulesCommonRuleSet", "MANAGED_RULE_GROUP"),
            Some(Action::Captcha) => ("captcha-login", "REGULAR"),
            Some(Action::Challenge) => ("challenge-api", "REGULAR"),
            _ => ("Default_Action", "REGULAR"),
        };
        out.extend_from_slice(b",\"terminatingRuleId\":\"");
        out.extend_from_slice(rule_id.as_bytes());
        out.extend_from_slice(b"\",\"terminatingRuleType\":\"");
        out.extend_from_slice(rule_type.as_bytes());
        out.extend_from_slice(b"\",\"action\":");
        out.extend_from_slice(&tb[SimField::Action as usize].json[action]);
        out.extend_from_slice(b",\"terminatingRuleMatchDetails\":[],\"httpSourceName\":");
        out.extend_from_slice(&tb[SimField::HttpSourceName as usize].json[source]);
        out.extend_from_slice(b",\"httpSourceId\":");
        out.extend_from_slice(&self.source_ids[source]);
        match self.actions[action] {
            Some(Action::Block) => out.extend_from_slice(
                b",\"ruleGroupList\":[{\"ruleGroupId\":\"AWS#AWSManagedRulesCommonRuleSet\",\"terminatingRule\":{\"ruleId\":\"GenericRFI_QUERYARGUMENTS\",\"action\":\"BLOCK\",\"ruleMatchDetails\":null},\"nonTerminatingMatchingRules\":[],\"excludedRules\":null,\"customerConfig\":null}]",
            ),
            _ => out.extend_from_slice(b",\"ruleGroupList\":[]"),
        }
        out.extend_from_slice(b",\"rateBasedRuleList\":[]");
        match self.actions[action] {
            Some(Action::Count) => out.extend_from_slice(
                b",\"nonTerminatingMatchingRules\":[{\"ruleId\":\"count-all-requests\",\"action\":\"COUNT\",\"ruleMatchDetails\":[]}]",
            ),
            _ => out.extend_from_slice(b",\"nonTerminatingMatchingRules\":[]"),
        }
        out.extend_from_slice(b",\"requestHeadersInserted\":null,\"responseCodeSent\":null,\"httpRequest\":{\"clientIp\":");
        out.extend_from_slice(ip);
        out.extend_from_slice(b",\"country\":");
        out.extend_from_slice(&tb[SimField::Country as usize].json[country]);
        out.extend_from_slice(b",\"headers\":[{\"name\":\"Host\",\"value\":\"");
        out.extend_from_slice(self.hosts[source].as_bytes());
        out.extend_from_slice(b"\"},{\"name\":\"User-Agent\",\"value\":\"");
        out.extend_from_slice(ua.as_bytes());
        out.extend_from_slice(b"\"},{\"name\":\"Accept\",\"value\":\"*/*\"}],\"uri\":\"");
        out.extend_from_slice(uri.as_bytes());
        out.extend_from_slice(b"\",\"args\":\"");
        out.extend_from_slice(args.as_bytes());
        out.extend_from_slice(b"\",\"httpVersion\":\"HTTP/1.1\",\"httpMethod\":");
        out.extend_from_slice(&tb[SimField::HttpMethod as usize].json[method]);
        out.extend_from_slice(b",\"requestId\":\"");
        write_hex(out, request_seq, 16);
        write_hex(out, request_rand, 8);
        out.extend_from_slice(b"\"}");
        match self.actions[action] {
            Some(Action::Block) => out.extend_from_slice(
                b",\"labels\":[{\"name\":\"awswaf:managed:aws:core-rule-set:GenericRFI_QueryArguments\"}]",
            ),
            Some(Action::Captcha) => out.extend_from_slice(
                b",\"captchaResponse\":{\"responseCode\":405,\"solveTimestamp\":0,\"failureReason\":\"TOKEN_MISSING\"}",
            ),
            Some(Action::Challenge) => out.extend_from_slice(
                b",\"challengeResponse\":{\"responseCode\":202,\"solveTimestamp\":0,\"failureReason\":\"TOKEN_MISSING\"}",
            ),
            _ => {}
        }
        out.extend_from_slice(b",\"httpStatus\":");
        out.extend_from_slice(&tb[SimField::HttpStatus as usize].json[status]);
        out.extend_from_slice(b"}\n");
    }
}

fn write_hex(out: &mut Vec<u8>, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (i * 4)) & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Episode, Profile};
    use super::*;
    use crate::parse::schema::WafLog;
    use std::collections::{HashMap, HashSet};

    const START: i64 = 1_700_000_000_000;

    fn generate(s: &Scenario) -> Vec<u8> {
        let mut g = Generator::new(s).unwrap();
        let mut out = Vec::new();
        while g.next_record(&mut out).is_some() {}
        out
    }

    fn logs(bytes: &[u8]) -> Vec<WafLog> {
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| WafLog::from_json(std::str::from_utf8(l).unwrap()).unwrap())
            .collect()
    }

    /// Checks observed frequencies against the weights: every value's count is within
    /// 5 standard deviations of its expectation (a false failure has odds < 1e-6).
    fn assert_frequencies(
        counts: &HashMap<String, u64>,
        values: &[String],
        weights: &[f64],
        n: u64,
    ) {
        let total: f64 = weights.iter().sum();
        for (v, w) in values.iter().zip(weights) {
            let p = w / total;
            let expected = p * n as f64;
            let sd = (n as f64 * p * (1.0 - p)).sqrt().max(1.0);
            let got = *counts.get(v).unwrap_or(&0) as f64;
            assert!(
                (got - expected).abs() <= 5.0 * sd,
                "{v}: got {got}, expected {expected:.1} ± {:.1}",
                5.0 * sd
            );
        }
    }

    fn field_of(log: &WafLog, f: SimField) -> String {
        let req = log.http_request.get().unwrap();
        match f {
            SimField::Action => log.action.get().unwrap().clone(),
            SimField::HttpSourceName => log.http_source_name.get().unwrap().clone(),
            SimField::HttpStatus => match log.http_status.get().unwrap() {
                crate::parse::schema::Code::Text(s) => s.clone(),
                crate::parse::schema::Code::Number(n) => n.to_string(),
            },
            SimField::Country => req.country.get().unwrap().clone(),
            SimField::HttpMethod => req.http_method.get().unwrap().clone(),
        }
    }

    #[test]
    fn normal_weights_hold_for_every_field() {
        let mut s = Scenario::new(42, START);
        s.limit = Limit::Count(200_000);
        let all = logs(&generate(&s));
        assert_eq!(all.len(), 200_000);
        let p = Profile::default();
        for f in SimField::ALL {
            let mut counts = HashMap::new();
            for l in &all {
                *counts.entry(field_of(l, f)).or_default() += 1;
            }
            let fp = p.field(f);
            assert_frequencies(&counts, &fp.values, &fp.normal, all.len() as u64);
        }
    }

    #[test]
    fn anomalous_weights_hold_inside_episodes() {
        for f in SimField::ALL {
            let mut s = Scenario::new(7, START);
            s.rate = 1000.0;
            s.limit = Limit::Duration(60_000);
            s.episodes
                .push(Episode::parse(&format!("{}:0:60s", f.name())).unwrap());
            let all = logs(&generate(&s));
            let mut counts = HashMap::new();
            for l in &all {
                *counts.entry(field_of(l, f)).or_default() += 1;
            }
            let fp = s.profile.field(f);
            assert_frequencies(&counts, &fp.values, &fp.anomalous, all.len() as u64);
        }
    }

    #[test]
    fn episode_timing_and_intensity() {
        let mut s = Scenario::new(3, START);
        s.rate = 200.0;
        s.limit = Limit::Duration(600_000);
        s.episodes
            .push(Episode::parse("country:2m:1m:0.5").unwrap());
        let all = logs(&generate(&s));
        let unknown =
            |l: &WafLog| !["US", "UK", "IN"].contains(&field_of(l, SimField::Country).as_str());
        let (mut inside, mut inside_unknown, mut outside, mut outside_unknown) =
            (0u64, 0u64, 0u64, 0u64);
        for l in &all {
            let t = l.timestamp.millis() - START;
            if (120_000..180_000).contains(&t) {
                inside += 1;
                inside_unknown += u64::from(unknown(l));
            } else {
                outside += 1;
                outside_unknown += u64::from(unknown(l));
            }
        }
        // Inside: half the events from the anomalous profile, where 8/8.2 are unknown
        // countries, plus the normal share (~0.4%): about 49%.
        let share = inside_unknown as f64 / inside as f64;
        assert!((0.44..0.54).contains(&share), "inside share {share}");
        // Outside: normal weights only, about 0.4%.
        let share = outside_unknown as f64 / outside as f64;
        assert!(share < 0.01, "outside share {share}");
        // Rate: 200/s over 60 s inside the window.
        assert!((11_000..13_000).contains(&inside), "{inside}");
    }

    #[test]
    fn flood_multiplies_one_clients_rate() {
        let mut s = Scenario::new(5, START);
        s.rate = 100.0;
        s.limit = Limit::Duration(300_000);
        s.episodes.push(Episode::parse("flood:1m:1m:6").unwrap());
        let truth = s.truth();
        let ip = truth[0].client_ip.clone().unwrap();
        let all = logs(&generate(&s));
        let from_ip: Vec<_> = all
            .iter()
            .filter(|l| l.http_request.get().unwrap().client_ip.get() == Some(&ip))
            .collect();
        // (6 - 1) * 100/s over 60 s = 30,000 expected.
        assert!(
            (29_000..31_000).contains(&from_ip.len()),
            "{}",
            from_ip.len()
        );
        assert!(
            from_ip
                .iter()
                .all(|l| (60_000..120_000).contains(&(l.timestamp.millis() - START)))
        );
        // The base process: 100/s over 300 s.
        assert!(
            (29_000..31_000).contains(&(all.len() - from_ip.len())),
            "{}",
            all.len()
        );
    }

    #[test]
    fn diurnal_cycle_changes_the_rate() {
        // 2023-11-15T00:00:00Z: a whole day from midnight.
        let mut s = Scenario::new(9, 1_700_006_400_000);
        s.rate = 10.0;
        s.diurnal = 0.8;
        s.limit = Limit::Duration(86_400_000);
        let all = logs(&generate(&s));
        let hour = |l: &WafLog| ((l.timestamp.millis() % 86_400_000) / 3_600_000) as usize;
        let mut per_hour = [0u64; 24];
        for l in &all {
            per_hour[hour(l)] += 1;
        }
        // Expected 36,000 * (1 ± 0.8) at the peak (14h) and trough (2h).
        assert!(
            per_hour[14] > 60_000 && per_hour[14] < 70_000,
            "{per_hour:?}"
        );
        assert!(per_hour[2] > 5_000 && per_hour[2] < 9_000, "{per_hour:?}");
        let total = all.len() as f64;
        assert!((total / 864_000.0 - 1.0).abs() < 0.02, "{total}");
    }

    #[test]
    fn deterministic_and_consistent() {
        let mut s = Scenario::new(11, START);
        s.limit = Limit::Count(5_000);
        s.episodes.push(Episode::parse("action:10s:30s").unwrap());
        let a = generate(&s);
        assert_eq!(a, generate(&s));
        s.seed = 12;
        assert_ne!(a, generate(&s));
        let all = logs(&a);
        let mut ids = HashSet::new();
        let mut last = 0;
        for l in &all {
            assert!(
                ids.insert(
                    l.http_request
                        .get()
                        .unwrap()
                        .request_id
                        .get()
                        .unwrap()
                        .clone()
                )
            );
            assert!(l.timestamp.millis() >= last);
            last = l.timestamp.millis();
            let rule = l.terminating_rule_id.get().unwrap();
            match l.action_kind() {
                Some(Action::Block) => assert_ne!(rule, "Default_Action"),
                Some(Action::Allow) => assert_eq!(rule, "Default_Action"),
                _ => {}
            }
            let src = l.http_source_name.get().unwrap();
            assert_eq!(l.http_source_id.get().unwrap(), &src.to_lowercase());
            let headers = l.http_request.get().unwrap().headers.get().unwrap();
            assert!(
                headers
                    .iter()
                    .any(|h| h.name.get().map(String::as_str) == Some("Host"))
            );
            assert!(
                headers
                    .iter()
                    .any(|h| h.name.get().map(String::as_str) == Some("User-Agent"))
            );
        }
        // Records are 800-950 bytes on average (BLOCK records carry their rule group),
        // like real WAF records with a few headers.
        let avg = a.len() / all.len();
        assert!((750..1000).contains(&avg), "{avg}");
    }

    #[test]
    fn client_ips_come_from_a_stable_pool() {
        let mut s = Scenario::new(2, START);
        s.limit = Limit::Count(20_000);
        let all = logs(&generate(&s));
        let ips: HashSet<_> = all
            .iter()
            .map(|l| {
                l.http_request
                    .get()
                    .unwrap()
                    .client_ip
                    .get()
                    .unwrap()
                    .clone()
            })
            .collect();
        assert!(
            ips.len() <= 7 * POOL_SIZE && ips.len() > 300,
            "{}",
            ips.len()
        );
        for ip in &ips {
            let first: u8 = ip.split('.').next().unwrap().parse().unwrap();
            assert!(![0, 10, 127].contains(&first) && first < 224, "{ip}");
        }
    }
}
