//! `${VAR}` expansion, the one rule of every experiment file: `${VAR}` is the variable's value, `${VAR:-default}`
//! the value or, when the variable is unset or empty, `default` (the shell's rule). A lone `$` is literal. An unset
//! variable without default is an error; so is an unterminated `${` or a name that is not `[A-Za-z0-9_]+`.

/// Expands `${VAR}` and `${VAR:-default}` in `s`, reading variables through `env`. The error says what is wrong
/// with the reference; the caller adds the key and file.
pub fn expand_vars(s: &str, env: &dyn Fn(&str) -> Option<String>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unterminated `${{` in {s:?}"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{expr}}}` is not a variable reference"));
        }
        match (env(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {name} is not set (used in {s:?})")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
