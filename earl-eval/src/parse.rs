//! Lenient parsing of verifier replies. Multimodal judges rarely return clean JSON: they wrap it in code fences,
//! use single quotes or unquoted keys, leave trailing commas, add prose after it, or answer with a bare list. We
//! accept what the reference's `mllm_output_to_dict` (EARL `rl/viescore.py`) accepts — the `||V^=^V||` delimiters,
//! the outermost `{ … }`, a bare `[a, b]` somewhere in a reply without braces, a bare number — plus a few forms it
//! does not, and reject everything else, so the caller can ask again.

/// The VIEScore scores of a reply `{"score": [...], "reasoning": "..."}`: a list of one or more numbers (a single
/// number counts as a list of one, as the reference wraps it), each finite and within 0–10. The reference takes any
/// length and checks no range (an empty list or a second entry it then reads crash its run; out-of-range scores are
/// used as they are); we call both unparsable, so the caller asks again. `None` when no such list can be found.
pub fn parse_score_list(reply: &str) -> Option<Vec<f64>> {
    let text = between_delimiters(reply).unwrap_or(reply);
    let scores = strict_json_scores(text).or_else(|| scan_score_key(text)).or_else(|| bare_scores(text))?;
    (!scores.is_empty() && scores.iter().all(|s| s.is_finite() && (0.0..=10.0).contains(s))).then_some(scores)
}

/// The GroundScore of a reply: the first `<score>N</score>` (whitespace around N allowed) with an integer N; `None`
/// when there is none or N is outside 0–10 (the reference re-asks in both cases).
pub fn parse_tagged_score(reply: &str) -> Option<u8> {
    let mut rest = reply;
    while let Some(start) = rest.find("<score>") {
        rest = &rest[start + "<score>".len()..];
        let Some(end) = rest.find("</score>") else { break };
        let inner = rest[..end].trim();
        if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
            return inner.parse::<u32>().ok().filter(|n| *n <= 10).map(|n| n as u8);
        }
    }
    None
}

/// The `reasoning` of a VIEScore reply, when its outermost `{ … }` is JSON with a string `reasoning` key (any
/// case); empty otherwise. Only kept for the record: scoring never depends on it.
pub fn parse_reasoning(reply: &str) -> String {
    let text = between_delimiters(reply).unwrap_or(reply);
    let (Some(start), Some(end)) = (text.find('{'), text.rfind('}')) else { return String::new() };
    if end <= start {
        return String::new();
    }
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(&text[start..=end]) else {
        return String::new();
    };
    obj.iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("reasoning"))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or_default()
        .to_string()
}

const DELIMITER: &str = "||V^=^V||";

fn between_delimiters(s: &str) -> Option<&str> {
    let start = s.find(DELIMITER)? + DELIMITER.len();
    let end = s.rfind(DELIMITER)?;
    (end > start).then(|| &s[start..end])
}

fn number_of(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The outermost `{ … }` parsed as JSON, reading its `score` key (a list or a single number).
fn strict_json_scores(s: &str) -> Option<Vec<f64>> {
    let (start, end) = (s.find('{')?, s.rfind('}')?);
    if end <= start {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(&s[start..=end]).ok()?;
    let obj = value.as_object()?;
    let score = obj.iter().find(|(k, _)| k.trim().eq_ignore_ascii_case("score"))?.1;
    match score {
        serde_json::Value::Array(items) => items.iter().map(number_of).collect(),
        other => number_of(other).map(|n| vec![n]),
    }
}

/// Finds a `score` key however it is quoted (`"score"`, `'score'`, `score`) followed by `:` and reads the value:
/// `[a, b, …]` (items may be quoted) or one number. Survives broken reasoning strings and trailing text.
fn scan_score_key(s: &str) -> Option<Vec<f64>> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("score") {
        let after = from + pos + "score".len();
        from = after;
        let rest = s[after..].trim_start_matches(['"', '\'']).trim_start();
        let Some(value) = rest.strip_prefix(':') else { continue };
        if let Some(list) = read_value(value.trim_start()) {
            return Some(list);
        }
    }
    None
}

fn read_value(v: &str) -> Option<Vec<f64>> {
    if let Some(body) = v.strip_prefix('[') {
        let inner = &body[..body.find(']')?];
        let mut items: Vec<&str> = inner.split(',').map(|t| t.trim().trim_matches(['"', '\'']).trim()).collect();
        if items.last() == Some(&"") {
            items.pop(); // trailing comma
        }
        items.iter().map(|t| t.parse::<f64>().ok()).collect()
    } else {
        let token: String =
            v.trim_start_matches(['"', '\'']).chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        token.parse::<f64>().ok().map(|n| vec![n])
    }
}

/// A reply without a usable `score` key: the span from its first `[` to its last `]` read as a list (the
/// reference does this for replies without braces, e.g. "Scores: [6, 0]"), else the whole reply as one number.
fn bare_scores(s: &str) -> Option<Vec<f64>> {
    let t = s.trim();
    if let (Some(start), Some(end)) = (t.find('['), t.rfind(']')) {
        if start < end {
            return read_value(&t[start..=end]);
        }
    }
    t.parse::<f64>().ok().map(|n| vec![n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_forms_judges_produce() {
        let ok = [
            r#"{"score": [7, 3], "reasoning": "fine"}"#,
            "```json\n{\n  \"score\": [7, 3],\n  \"reasoning\": \"fine\"\n}\n```\nHope this helps!",
            "{'score': [7, 3], 'reasoning': 'the man's hat is red'}",
            "{score: [7, 3,], reasoning: ok}",
            "Sure. {\"score\" : [\"7\", \"3\"], \"reasoning\" : \"x\"} trailing } brace",
            "||V^=^V||\n{\n\"score\" : [7, 3],\n\"reasoning\" : \"x\"\n}\n||V^=^V||",
            "[7, 3]",
            "Scores: [7, 3] as asked.",
            "{\"Score\": [7.0, 3.0]}",
        ];
        for reply in ok {
            assert_eq!(parse_score_list(reply), Some(vec![7.0, 3.0]), "{reply}");
        }
    }

    #[test]
    fn score_lists_of_any_length_from_one_are_read() {
        assert_eq!(parse_score_list(r#"{"score": [7], "reasoning": "one score only"}"#), Some(vec![7.0]));
        assert_eq!(parse_score_list(r#"{"score": 6, "reasoning": "a bare number"}"#), Some(vec![6.0]));
        assert_eq!(parse_score_list("{'score': [8, 2, 5]}"), Some(vec![8.0, 2.0, 5.0]));
        assert_eq!(parse_score_list("5"), Some(vec![5.0]));
    }

    #[test]
    fn rejects_what_cannot_be_trusted() {
        let bad = [
            "I cannot evaluate this image.",
            r#"{"score": [], "reasoning": "nothing"}"#,
            r#"{"score": [7, 11]}"#,
            r#"{"score": [7, -1]}"#,
            r#"{"score": [10.5]}"#,
            r#"{"score": ["seven", 3]}"#,
            "",
        ];
        for reply in bad {
            assert_eq!(parse_score_list(reply), None, "{reply}");
        }
    }

    #[test]
    fn reasoning_is_read_from_json_replies_only() {
        assert_eq!(parse_reasoning("```json\n{\"score\": [7, 3], \"Reasoning\": \"red wall\"}\n```"), "red wall");
        assert_eq!(parse_reasoning("{'score': [7, 3], 'reasoning': 'x'}"), "");
        assert_eq!(parse_reasoning("[7, 3]"), "");
    }

    #[test]
    fn tagged_scores_follow_the_reference_rules() {
        assert_eq!(parse_tagged_score("A looks like B.\n<score>8</score>"), Some(8));
        assert_eq!(parse_tagged_score("Format: <score>X</score>\n<score> 10 </score>"), Some(10));
        assert_eq!(parse_tagged_score("<score>11</score>"), None);
        assert_eq!(parse_tagged_score("<score>7.5</score>"), None);
        assert_eq!(parse_tagged_score("score: 7"), None);
        assert_eq!(parse_tagged_score("<score>7"), None);
    }
}
