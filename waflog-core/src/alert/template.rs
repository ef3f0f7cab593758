//! Message and subject templates: text with `{{placeholder}}` fields.
//!
//! | placeholder          | value                                                        |
//! |----------------------|--------------------------------------------------------------|
//! | `{{monitor}}`        | monitor name                                                 |
//! | `{{trigger}}`        | trigger name                                                 |
//! | `{{severity}}`       | 1 (highest) to 5                                             |
//! | `{{period_start}}`   | start of the evaluated period, RFC 3339 UTC                  |
//! | `{{period_end}}`     | end of the evaluated period, RFC 3339 UTC                    |
//! | `{{entity}}`         | the entity (values joined with `,`), empty without one      |
//! | `{{detector}}`       | the detector whose results the monitor reads                 |
//! | `{{explanation}}`    | several lines: what moved, how far, who drove it             |
//! | `{{periods_active}}` | periods from the alert's first firing to its last            |
//! | `{{state}}`          | `ACTIVE`, `ACKNOWLEDGED`, `COMPLETED` or `ERROR`             |
//! | `{{kind}}`           | `alert`, `still active`, `completed`, `error`, `test` or `new normal` |
//! | `{{alert_id}}`       | the alert ID (`waflog alerts ack ID`)                        |
//! | `{{start_time}}`     | start of the alert's first firing period, RFC 3339 UTC       |
//! | `{{headline}}`       | the first sentence, by kind: the seed's "Monitor X just entered alert status. Please investigate the issue." for a new alert |
//!
//! Spaces inside the braces are allowed (`{{ monitor }}`); an unknown name is an error
//! that names it. `{{explanation}}` spans lines, so it is not allowed in a subject.
//!
//! ```
//! use waflog_core::alert::template::{Placeholder, Template, TemplateSlot};
//! let t = Template::parse("{{monitor}} fired ({{ severity }})", TemplateSlot::Subject).unwrap();
//! let text = t.render(|p| match p {
//!     Placeholder::Monitor => "UNK_source-Monitor".into(),
//!     Placeholder::Severity => "1".into(),
//!     _ => String::new(),
//! });
//! assert_eq!(text, "UNK_source-Monitor fired (1)");
//! assert!(Template::parse("{{montor}}", TemplateSlot::Message).unwrap_err().contains("{{montor}}"));
//! ```

/// The default message: the seed's OpenSearch Alerting text, then the explanation.
pub const DEFAULT_MESSAGE: &str = "{{headline}}\n  - Trigger: {{trigger}}\n  - Severity: {{severity}}\n  - Period start: {{period_start}}\n  - Period end: {{period_end}}\n\n{{explanation}}";

/// The default subject (SNS allows 100 characters; the CLI truncates).
pub const DEFAULT_SUBJECT: &str =
    "waflog {{kind}}: {{monitor}} / {{trigger}} (severity {{severity}})";

/// A value a template can insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placeholder {
    /// `{{monitor}}`
    Monitor,
    /// `{{trigger}}`
    Trigger,
    /// `{{severity}}`
    Severity,
    /// `{{period_start}}`
    PeriodStart,
    /// `{{period_end}}`
    PeriodEnd,
    /// `{{entity}}`
    Entity,
    /// `{{detector}}`
    Detector,
    /// `{{explanation}}`
    Explanation,
    /// `{{periods_active}}`
    PeriodsActive,
    /// `{{state}}`
    State,
    /// `{{kind}}`
    Kind,
    /// `{{alert_id}}`
    AlertId,
    /// `{{start_time}}`
    StartTime,
    /// `{{headline}}`
    Headline,
}

/// Every placeholder with its name.
pub const PLACEHOLDERS: [(&str, Placeholder); 14] = [
    ("monitor", Placeholder::Monitor),
    ("trigger", Placeholder::Trigger),
    ("severity", Placeholder::Severity),
    ("period_start", Placeholder::PeriodStart),
    ("period_end", Placeholder::PeriodEnd),
    ("entity", Placeholder::Entity),
    ("detector", Placeholder::Detector),
    ("explanation", Placeholder::Explanation),
    ("periods_active", Placeholder::PeriodsActive),
    ("state", Placeholder::State),
    ("kind", Placeholder::Kind),
    ("alert_id", Placeholder::AlertId),
    ("start_time", Placeholder::StartTime),
    ("headline", Placeholder::Headline),
];

/// Where a template is used: subjects are one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateSlot {
    /// A message body.
    Message,
    /// A subject line.
    Subject,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(Placeholder),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; the error names the unknown or unclosed placeholder.
    pub fn parse(text: &str, slot: TemplateSlot) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                let shown: String = rest[open..].chars().take(24).collect();
                return Err(format!("unclosed placeholder `{shown}`"));
            };
            let name = after[..close].trim();
            let Some(&(_, p)) = PLACEHOLDERS.iter().find(|(n, _)| *n == name) else {
                let known: Vec<String> = PLACEHOLDERS
                    .iter()
                    .map(|(n, _)| format!("{{{{{n}}}}}"))
                    .collect();
                return Err(format!(
                    "unknown placeholder `{{{{{name}}}}}` (known: {})",
                    known.join(", ")
                ));
            };
            if slot == TemplateSlot::Subject && p == Placeholder::Explanation {
                return Err("`{{explanation}}` spans lines and cannot be used in a subject".into());
            }
            parts.push(Part::Field(p));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The default message template.
    pub fn default_message() -> Template {
        Template::parse(DEFAULT_MESSAGE, TemplateSlot::Message)
            .unwrap_or(Template { parts: vec![] })
    }

    /// The default subject template.
    pub fn default_subject() -> Template {
        Template::parse(DEFAULT_SUBJECT, TemplateSlot::Subject)
            .unwrap_or(Template { parts: vec![] })
    }

    /// Fills the template with `value` of each placeholder.
    pub fn render(&self, value: impl Fn(Placeholder) -> String) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => out.push_str(&value(*f)),
            }
        }
        out
    }

    /// True when the template uses `p`.
    pub fn uses(&self, p: Placeholder) -> bool {
        self.parts.contains(&Part::Field(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        assert!(Template::default_message().uses(Placeholder::Explanation));
        assert!(!Template::default_subject().uses(Placeholder::Explanation));
        assert_eq!(Template::default_message().parts.len(), 11);
    }

    #[test]
    fn literal_braces_and_errors() {
        let t = Template::parse("a }} b {{kind}}{{ kind }}", TemplateSlot::Message).unwrap();
        assert_eq!(t.render(|_| "x".into()), "a }} b xx");
        let e = Template::parse("x {{monitor", TemplateSlot::Message).unwrap_err();
        assert!(e.contains("unclosed") && e.contains("{{monitor"), "{e}");
        let e = Template::parse("{{ctx.monitor.name}}", TemplateSlot::Message).unwrap_err();
        assert!(
            e.contains("`{{ctx.monitor.name}}`") && e.contains("{{monitor}}"),
            "{e}"
        );
        let e = Template::parse("{{explanation}}", TemplateSlot::Subject).unwrap_err();
        assert!(e.contains("subject"), "{e}");
        assert_eq!(
            Template::parse("", TemplateSlot::Message)
                .unwrap()
                .render(|_| "x".into()),
            ""
        );
    }
}
