//! Variable interpolation as compose-go does it: `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`,
//! `${VAR:?err}`, `${VAR?err}`, `${VAR:+x}`, `${VAR+x}`, and `$$` for a literal `$`.
//! Defaults and alternatives are themselves interpolated (nesting).

use crate::Error;
use std::cell::RefCell;

thread_local! {
    /// Variables used plainly (`$X`, `${X}`) while unset: compose warns about each.
    static UNSET: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn note_unset(name: &str) {
    UNSET.with(|u| {
        let mut u = u.borrow_mut();
        if !u.iter().any(|x| x == name) {
            u.push(name.to_string());
        }
    });
}

/// The unset variables interpolated as blanks since the last call (and forget them).
pub fn take_unset() -> Vec<String> {
    UNSET.with(|u| std::mem::take(&mut *u.borrow_mut()))
}

/// Interpolate `s`; `lookup` answers a variable's value (None = unset).
pub fn interpolate(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let ch = s[i..].chars().next().unwrap_or('\0');
            out.push(ch);
            i += ch.len_utf8().max(1);
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let end = closing_brace(s, i + 2).ok_or_else(|| {
                    Error::Interpolation(format!(
                        "invalid interpolation format for {s:?}: missing closing brace"
                    ))
                })?;
                out.push_str(&braced(&s[i + 2..end], s, lookup)?);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                match lookup(&s[start..j]) {
                    Some(v) => out.push_str(&v),
                    None => note_unset(&s[start..j]),
                }
                i = j;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The index of the `}` closing a `${` whose body starts at `from` (nested `${…}` allowed).
fn closing_brace(s: &str, from: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 1;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(
    body: &str,
    whole: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Error> {
    let name_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let name = &body[..name_end];
    let rest = &body[name_end..];
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return Err(Error::Interpolation(format!(
            "invalid interpolation format for {whole:?}. You may need to escape any $ with another $."
        )));
    }
    let val = lookup(name);
    let set_nonempty = val.as_deref().is_some_and(|v| !v.is_empty());
    let sub = |x: &str| interpolate(x, lookup);
    Ok(match rest {
        "" => match val {
            Some(v) => v,
            None => {
                note_unset(name);
                String::new()
            }
        },
        _ if rest.starts_with(":-") => {
            if set_nonempty { val.unwrap_or_default() } else { sub(&rest[2..])? }
        }
        _ if rest.starts_with('-') => match val {
            Some(v) => v,
            None => sub(&rest[1..])?,
        },
        _ if rest.starts_with(":?") => {
            if set_nonempty {
                val.unwrap_or_default()
            } else {
                return Err(Error::RequiredVariable(name.into(), sub(&rest[2..])?));
            }
        }
        _ if rest.starts_with('?') => match val {
            Some(v) => v,
            None => return Err(Error::RequiredVariable(name.into(), sub(&rest[1..])?)),
        },
        _ if rest.starts_with(":+") => {
            if set_nonempty { sub(&rest[2..])? } else { String::new() }
        }
        _ if rest.starts_with('+') => {
            if val.is_some() { sub(&rest[1..])? } else { String::new() }
        }
        _ => {
            return Err(Error::Interpolation(format!(
                "invalid interpolation format for {whole:?}. You may need to escape any $ with another $."
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(s: &str) -> Result<String, Error> {
        let env: HashMap<&str, &str> = [("A", "a"), ("E", ""), ("N", "1")].into_iter().collect();
        interpolate(s, &|k| env.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn all_forms() {
        assert_eq!(run("$A-${A}").unwrap(), "a-a");
        assert_eq!(run("${U:-d}|${E:-d}|${E-d}|${U-d}").unwrap(), "d|d||d");
        assert_eq!(run("${A:+x}|${E:+x}|${E+x}|${U+x}").unwrap(), "x||x|");
        assert_eq!(run("$$A $$ $").unwrap(), "$A $ $");
        assert_eq!(run("${U:-${A}-${N}}").unwrap(), "a-1");
        assert_eq!(run("pre${U}post").unwrap(), "prepost");
        assert_eq!(run("é$A").unwrap(), "éa");
    }

    #[test]
    fn required_and_errors() {
        match run("${U:?need U}") {
            Err(Error::RequiredVariable(n, m)) => {
                assert_eq!((n.as_str(), m.as_str()), ("U", "need U"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(run("${E:?x}"), Err(Error::RequiredVariable(..))));
        assert_eq!(run("${E?x}").unwrap(), "");
        assert!(run("${A").is_err());
        assert!(run("${}").is_err());
    }
}
