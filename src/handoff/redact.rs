//! Secrets never reach a handoff: API keys, bearer tokens, AWS keys, private key blocks,
//! `password=`-style assignments, and any value found in `auth.json`, wherever they appear.

use regex::Regex;
use std::sync::OnceLock;

pub const MASK: &str = "[REDACTED]";

fn patterns() -> &'static [(Regex, &'static str)] {
    static PATTERNS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let p = |re: &str, replacement: &'static str| (Regex::new(re).expect("a valid pattern"), replacement);
        vec![
            p(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END[A-Z0-9 ]*PRIVATE KEY-----|\z)", MASK),
            p(r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}", MASK),
            p(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})", MASK),
            p(r"\bxox[abprs]-[A-Za-z0-9-]{10,}", MASK),
            p(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", MASK),
            p(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{12,}", "$1 [REDACTED]"),
            p(r"(?i)\b(authorization)\s*[:=]\s*[^\s,;]+(?:\s+[A-Za-z0-9._~+/=\-]{12,})?", "$1: [REDACTED]"),
            p(
                r#"(?i)\b((?:[a-z0-9_]*_)?(?:password|passwd|pwd|secret|secret_key|api_key|apikey|access_key|token|auth_token)(?:_[a-z0-9_]*)?)(["']?\s*[:=]\s*)("[^"\n]*"|'[^'\n]*'|[^\s,;&"']+)"#,
                "$1$2[REDACTED]",
            ),
            p(r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}", MASK),
        ]
    })
}

/// The string values of `auth.json` long enough to be secrets; read to be masked, never
/// to be shown.
pub fn secrets_in_auth_json(text: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if s.len() >= 8 => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str(text) {
        walk(&v, &mut out);
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

pub struct Redactor {
    literals: Vec<String>,
}

impl Redactor {
    pub fn new(literals: Vec<String>) -> Redactor {
        Redactor { literals }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.literals {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        for (re, replacement) in patterns() {
            out = re.replace_all(&out, *replacement).into_owned();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_secret_is_masked() {
        let r = Redactor::new(secrets_in_auth_json(
            r#"{"tokens": {"refresh_token": "rt-very-private-value"}}"#,
        ));
        let planted = [
            "sk-abcdefghijklmnopqrstuvwx",
            "sk-proj-ABCDEFGHIJKLMNOPqrstuvwx_1234",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_abcdefghijklmnopqrstuvwxyz0123",
            "rt-very-private-value",
            "hunter2hunter2",
            "s3cr3t-value",
            "abcdefghijklmnopqrstuvwxyz.token",
            "MIIEowIBAAKCAQEA",
        ];
        let text = format!(
            "key {} and {} aws {} gh {} auth {} password={} DB_PASSWORD: '{}' Authorization: Bearer {}\n-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
            planted[0],
            planted[1],
            planted[2],
            planted[3],
            planted[4],
            planted[5],
            planted[6],
            planted[7],
            planted[8]
        );
        let out = r.redact(&text);
        for secret in planted {
            assert!(!out.contains(secret), "{secret} survived in {out}");
        }
        assert!(out.contains("password=[REDACTED]"));
        assert_eq!(
            r.redact("cargo test --release passed"),
            "cargo test --release passed"
        );
    }
}
