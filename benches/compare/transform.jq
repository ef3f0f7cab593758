# The seed's indicator transform in jq, used by benches/compare.sh:
#   jq -c -f benches/compare/transform.jq IN.ndjson > OUT.ndjson
# Vocabularies are the seed defaults; the rules match `waflog transform`.
def up: if type == "string" then ascii_upcase else "" end;
def flag: if . then 1 else 0 end;
# jq's IN, spelled out: jaq (the Rust jq, a peer in compare.sh) has no IN.
def isin(s): . as $x | any(s; . == $x);
# "200" or 200 -> 200; anything else -> null
def code: (if type == "string" then (tonumber? // null) elif type == "number" then . else null end)
          | if . != null and . == floor and . >= 100 and . <= 999 then . else null end;

(.timestamp |= (if . < 1e11 then (. * 1000 | round) else . end))
| (.httpRequest.country | up | isin("US", "UK", "IN")) as $kc
| (.action | up) as $a
| (.httpRequest.httpMethod | isin("GET", "HEAD", "POST")) as $cm
| (.httpSourceName | up | isin("ALB", "APIGW", "APPSYNC", "CF")) as $ks
| (if .httpStatus != null then .httpStatus else .responseCodeSent end) as $st
| .K_country = ($kc | flag)
| .UNK_country = ($kc | not | flag)
| .K_action = ($a | isin("ALLOW", "CAPTCHA", "CHALLENGE", "COUNT") | flag)
| .B_action = ($a == "BLOCK" | flag)
| if $st == null then .
  else ($st | code) as $c
  | .O_httpstatus = ($c != null and $c < 500 | flag)
  | .B_httpstatus = ($c != null and $c >= 500 and $c < 600 | flag)
  end
| .common_method = ($cm | flag)
| .uncommon_method = ($cm | not | flag)
| .K_source = ($ks | flag)
| .UNK_source = ($ks | not | flag)
