//! `.env` files as compose-go reads them: `KEY=VALUE`, `export KEY=VALUE`, comments,
//! single quotes (literal), double quotes (escapes, interpolation), unquoted values with
//! trailing ` #comments`, and a bare `KEY` that takes the value from the environment.

use crate::interp::interpolate;
use crate::Error;

/// Parse `.env` content. `lookup` resolves `${VAR}` in values (earlier keys of the file win
/// over it) and bare `KEY` lines.
pub fn parse(
    content: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut lines = content.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
        let (key, raw) = match t.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim_start().to_string()),
            None => {
                let k = t.to_string();
                if let Some(v) = lookup(&k) {
                    out.push((k, v));
                }
                continue;
            }
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(Error::EnvFile(format!(
                "line {}: unexpected character in variable name {key:?}",
                n + 1
            )));
        }
        let known = |k: &str| {
            out.iter()
                .rev()
                .find(|(x, _)| x == k)
                .map(|(_, v)| v.clone())
                .or_else(|| lookup(k))
        };
        let value = if let Some(q @ ('\'' | '"')) = raw.chars().next() {
            // Quoted: up to the closing quote, over several lines if need be; after it
            // only blanks or a `# comment`.
            let mut v = raw[1..].to_string();
            let end = loop {
                if let Some(i) = closing_quote(&v, q) {
                    break i;
                }
                match lines.next() {
                    Some((_, l)) => {
                        v.push('\n');
                        v.push_str(l);
                    }
                    None => {
                        return Err(Error::EnvFile(format!(
                            "line {}: unterminated quoted value",
                            n + 1
                        )))
                    }
                }
            };
            v.truncate(end);
            if q == '"' {
                interpolate(&unescape(&v), &known)?
            } else {
                v
            }
        } else {
            let v = match raw.find(" #") {
                Some(i) => raw[..i].trim_end().to_string(),
                None => raw.trim_end().to_string(),
            };
            interpolate(&v, &known)?
        };
        out.retain(|(k, _)| *k != key);
        out.push((key, value));
    }
    Ok(out)
}

/// Where the value's closing quote is: the first `'`, or the first `"` not escaped.
fn closing_quote(v: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in v.char_indices() {
        match c {
            '\\' if q == '"' && !escaped => escaped = true,
            c if c == q && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let env = parse(
            "# c\nA=1\nexport B = two \nC='lit $A'\nD=\"q ${A}\\n\"\nE=x #comment\nF=${A}${B}\nHOME\nG=\"multi\nline\"\n",
            &|k| (k == "HOME").then(|| "/root".to_string()),
        )
        .unwrap();
        let get = |k: &str| env.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("B"), Some("two"));
        assert_eq!(get("C"), Some("lit $A"));
        assert_eq!(get("D"), Some("q 1\n"));
        assert_eq!(get("E"), Some("x"));
        assert_eq!(get("F"), Some("1two"));
        assert_eq!(get("HOME"), Some("/root"));
        assert_eq!(get("G"), Some("multi\nline"));
    }
}
