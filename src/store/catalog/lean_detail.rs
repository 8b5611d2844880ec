//! A lean `detail`: from catalog format 4, a string value in an op's detail that equals
//! the op's own `src`, `dst` or `hash_before` (known when the detail is written) is
//! written as `"=src"`, `"=dst"` or `"=hash_before"`, and given back in full on every read.
//! A session move's detail repeats both paths (the thread row before and after) and the
//! source hash; at 20,000 ops a run that was most of the catalog. Catalogs of format 4
//! are refused by older binaries, so no reader ever sees a token it does not expand.

use serde_json::Value;

const TOKENS: [&str; 3] = ["=src", "=dst", "=hash_before"];

/// The op's own values a detail may point at, in `TOKENS` order.
pub struct OwnValues<'a> {
    pub src: Option<&'a str>,
    pub dst: Option<&'a str>,
    pub hash_before: Option<&'a str>,
}

impl OwnValues<'_> {
    fn pairs(&self) -> [(&'static str, Option<&str>); 3] {
        [
            (TOKENS[0], self.src),
            (TOKENS[1], self.dst),
            (TOKENS[2], self.hash_before),
        ]
    }
}

/// The detail's text as stored: every string value equal to one of `own` replaced by its
/// token. Short values (under 16 bytes) are left as they are: a token saves nothing there.
pub fn compact(detail: &Value, own: &OwnValues<'_>) -> serde_json::Result<String> {
    let mut value = detail.clone();
    walk(&mut value, &|s: &str| {
        own.pairs()
            .into_iter()
            .find(|(_, v)| v.is_some_and(|v| v.len() >= 16 && v == s))
            .map(|(token, _)| token.to_string())
    });
    serde_json::to_string(&value)
}

/// The detail as it was written in full. Text without a token is returned as it is, so
/// older details and most reads cost nothing.
pub fn expand(text: String, own: &OwnValues<'_>) -> String {
    if !TOKENS.iter().any(|t| text.contains(&format!("\"{t}\""))) {
        return text;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(&text) else {
        return text;
    };
    walk(&mut value, &|s: &str| {
        own.pairs()
            .into_iter()
            .find(|(token, _)| *token == s)
            .and_then(|(_, v)| v.map(str::to_string))
    });
    serde_json::to_string(&value).unwrap_or(text)
}

fn walk(value: &mut Value, replace: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::String(s) => {
            if let Some(new) = replace(s) {
                *s = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, replace)),
        Value::Object(map) => map.values_mut().for_each(|v| walk(v, replace)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_reads_back_exactly_as_written_and_is_smaller_on_disk() {
        let src = "/home/me/.codex/sessions/2026/01/02/rollout-2026-01-02T00-00-00-abc.jsonl";
        let dst = "/home/me/.codex/archived_sessions/rollout-2026-01-02T00-00-00-abc.jsonl";
        let hash = "12746214678d45e769b1b2e323c1a8be8b30c48aacc71688db6370f8adbda6e4";
        let detail = serde_json::json!({
            "thread_id": "abc",
            "row_before": {"rollout_path": src, "archived": 0},
            "row_after": {"rollout_path": dst, "archived": 1},
            "plain_hash": hash,
            "files": [{"path": src}],
            "short": "=src",
            "note": "=dst is a token only as a whole value"
        });
        let own = OwnValues {
            src: Some(src),
            dst: Some(dst),
            hash_before: Some(hash),
        };
        let stored = compact(&detail, &own).unwrap();
        assert!(
            !stored.contains(src) && !stored.contains(dst) && !stored.contains(hash),
            "{stored}"
        );
        assert!(stored.len() < serde_json::to_string(&detail).unwrap().len() / 2);
        let back: Value = serde_json::from_str(&expand(stored, &own)).unwrap();
        // A literal "=src" in a detail would come back as the path: no field holds one
        // (paths are absolute, hashes hex), and this shows the rule is by whole value.
        let mut expected = detail.clone();
        expected["short"] = Value::String(src.into());
        assert_eq!(back, expected);
        let none = OwnValues {
            src: None,
            dst: None,
            hash_before: None,
        };
        assert_eq!(expand("{\"a\":\"x\"}".into(), &none), "{\"a\":\"x\"}");
    }
}
