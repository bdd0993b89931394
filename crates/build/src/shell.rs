//! Shell-word processing as BuildKit's `shell.Lex` does it: quotes, the escape token, and
//! `$VAR`, `${VAR}`, `${VAR:-x}`, `${VAR-x}`, `${VAR:+x}`, `${VAR+x}`, `${VAR:?x}`,
//! `${VAR?x}`, `${VAR#p}`, `${VAR##p}`, `${VAR%p}`, `${VAR%%p}`, `${VAR/p/r}`, `${VAR//p/r}`.
//!
//! It is not a shell: no command substitution, no arithmetic, no globbing of files.

/// An error while processing a word; the message is BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShellError(pub String);

fn err<T>(m: impl Into<String>) -> Result<T, ShellError> {
    Err(ShellError(m.into()))
}

/// Where variables come from.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// A list of `KEY=value` pairs; later entries win, as in Docker's environment.
impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(self.as_slice(), name)
    }
}

/// No variables at all.
pub struct NoEnv;
impl Env for NoEnv {
    fn get(&self, _: &str) -> Option<String> {
        None
    }
}

/// The lexer's settings.
#[derive(Debug, Clone, Copy)]
pub struct Lex {
    pub escape: char,
    /// Keep quote characters in the result.
    pub raw_quotes: bool,
    /// Keep escape characters in the result.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset_env: bool,
}

impl Lex {
    pub fn new(escape: char) -> Self {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
        }
    }

    /// Expands one word: quotes removed, variables substituted, no splitting.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        Ok(self.run(word, env)?.0)
    }

    /// Expands and splits into words the way the shell would (unquoted expansions split).
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        Ok(self.run(word, env)?.1)
    }

    /// Expands one word and also reports the variable names it referred to.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<(String, Vec<String>), ShellError> {
        let mut w = Scanner::new(self, word, env);
        let (s, _) = w.stop_on(&[], false)?;
        Ok((s, w.matches))
    }

    fn run(&self, word: &str, env: &dyn Env) -> Result<(String, Vec<String>), ShellError> {
        let mut w = Scanner::new(self, word, env);
        w.stop_on(&[], false)
    }
}

#[derive(Default)]
struct Words {
    words: Vec<String>,
    word: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Scanner<'a> {
    lex: &'a Lex,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
    matches: Vec<String>,
}

impl<'a> Scanner<'a> {
    fn new(lex: &'a Lex, word: &str, env: &'a dyn Env) -> Self {
        Scanner {
            lex,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: lex.raw_escapes,
            matches: Vec::new(),
        }
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn getenv(&mut self, name: &str) -> Option<String> {
        let v = self.env.get(name);
        if !self.matches.iter().any(|m| m == name) {
            self.matches.push(name.to_string());
        }
        v
    }

    /// Processes up to (and consuming) one of `stops`, or to the end when `stops` is empty.
    fn stop_on(
        &mut self,
        stops: &[char],
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        let saved = self.raw_escapes;
        if raw_escapes {
            self.raw_escapes = true;
        }
        let r = self.stop_on_inner(stops);
        self.raw_escapes = saved;
        r
    }

    fn stop_on_inner(&mut self, stops: &[char]) -> Result<(String, Vec<String>), ShellError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if stops.contains(&c) {
                self.next();
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let v = self.dollar()?;
                    result.push_str(&v);
                    words.add_string(&v);
                }
                '\'' => {
                    let v = self.single_quote()?;
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                '"' => {
                    let v = self.double_quote()?;
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                _ => {
                    self.next();
                    if c == self.lex.escape {
                        if self.raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        let Some(n) = self.next() else { break };
                        words.add_raw_char(n);
                        result.push(n);
                    } else {
                        words.add_char(c);
                        result.push(c);
                    }
                }
            }
        }
        if let Some(s) = stops.first() {
            return err(format!(
                "unexpected end of statement while looking for matching {s}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, ShellError> {
        let mut r = String::new();
        self.next();
        if self.lex.raw_quotes {
            r.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return err(
                        "unexpected end of statement while looking for matching single-quote",
                    )
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        r.push('\'');
                    }
                    return Ok(r);
                }
                Some(c) => r.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, ShellError> {
        let mut r = String::new();
        self.next();
        if self.lex.raw_quotes {
            r.push('"');
        }
        loop {
            let Some(c) = self.peek() else {
                return err("unexpected end of statement while looking for matching double-quote");
            };
            if c == '"' {
                self.next();
                if self.lex.raw_quotes {
                    r.push('"');
                }
                return Ok(r);
            }
            if c == '$' {
                let v = self.dollar()?;
                r.push_str(&v);
                continue;
            }
            self.next();
            if c == self.lex.escape {
                match self.peek() {
                    None => continue,
                    Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                        if self.raw_escapes {
                            r.push(c);
                        }
                        self.next();
                        r.push(n);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            r.push(c);
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(|d| d.is_ascii_digit()) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            self.next();
            name.push(c);
        }
        name
    }

    fn dollar(&mut self) -> Result<String, ShellError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            let v = self.getenv(&name);
            return Ok(match v {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return err("syntax error: missing '}'"),
            Some('{' | '}' | ':') => return err("syntax error: bad substitution"),
            _ => {}
        }
        let name = self.name();
        let Some(mut c) = self.next() else {
            return err("syntax error: missing '}'");
        };
        let mut mods = c.to_string();
        match c {
            '}' => {
                let v = self.getenv(&name);
                Ok(match v {
                    Some(v) => v,
                    None if self.lex.skip_unset_env => format!("${{{name}}}"),
                    None => String::new(),
                })
            }
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = c == ':';
                if null_is_unset {
                    let Some(n) = self.next() else {
                        return err("syntax error: missing '}'");
                    };
                    c = n;
                    mods.push(c);
                }
                let raw = c == '#' || c == '%';
                if null_is_unset && (raw || !matches!(c, '+' | '-' | '?')) {
                    return err(format!("unsupported modifier ({mods}) in substitution"));
                }
                let (word, _) = match self.stop_on(&['}'], raw) {
                    Ok(w) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return err("syntax error: missing '}'");
                        }
                        return Err(e);
                    }
                };
                let v = self.getenv(&name);
                if self.lex.skip_unset_env && v.is_none() {
                    return Ok(format!("${{{name}{mods}{word}}}"));
                }
                let empty = v.as_deref().is_none_or(|v| null_is_unset && v.is_empty());
                match c {
                    '-' => Ok(if empty { word } else { v.unwrap_or_default() }),
                    '+' => Ok(if empty { String::new() } else { word }),
                    '?' => match v {
                        None => err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        )),
                        Some(v) if null_is_unset && v.is_empty() => err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        )),
                        Some(v) => Ok(v),
                    },
                    _ => {
                        let value = v.unwrap_or_default();
                        let (greedy, pat) = match word.strip_prefix(c) {
                            Some(p) => (true, p.to_string()),
                            None => (false, word.clone()),
                        };
                        let pat = Pattern::new(&pat, self.lex.escape);
                        Ok(if c == '#' {
                            trim_prefix(&pat, &value, greedy)
                        } else {
                            trim_suffix(&pat, &value, greedy)
                        })
                    }
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let before = self.pos;
                let (pat, _) = self.stop_on(&['/', '}'], true)?;
                let ended = self.chars.get(self.pos.wrapping_sub(1)) == Some(&'}');
                let _ = before;
                let repl = if ended {
                    String::new()
                } else {
                    self.stop_on(&['}'], true)?.0
                };
                let value = self.getenv(&name).unwrap_or_default();
                let pat = Pattern::new(&pat, self.lex.escape);
                Ok(replace(&pat, &value, &repl, all))
            }
            _ => err(format!("unsupported modifier ({mods}) in substitution")),
        }
    }
}

/// A shell pattern (`*`, `?`, `[...]`, escapes) for the `#`, `%` and `/` modifiers.
#[derive(Debug)]
enum Pat {
    Lit(char),
    Any,
    Star,
    Class(Vec<(char, char)>, bool),
}

struct Pattern(Vec<Pat>);

impl Pattern {
    fn new(s: &str, escape: char) -> Self {
        let cs: Vec<char> = s.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < cs.len() {
            let c = cs[i];
            i += 1;
            if c == escape && i < cs.len() {
                out.push(Pat::Lit(cs[i]));
                i += 1;
            } else if c == '*' {
                out.push(Pat::Star);
            } else if c == '?' {
                out.push(Pat::Any);
            } else if c == '[' {
                if let Some(end) = cs[i..].iter().skip(1).position(|&x| x == ']') {
                    let body = &cs[i..i + 1 + end];
                    let (neg, body) = match body.first() {
                        Some('!' | '^') => (true, &body[1..]),
                        _ => (false, body),
                    };
                    let mut ranges = Vec::new();
                    let mut j = 0;
                    while j < body.len() {
                        if j + 2 < body.len() && body[j + 1] == '-' {
                            ranges.push((body[j], body[j + 2]));
                            j += 3;
                        } else {
                            ranges.push((body[j], body[j]));
                            j += 1;
                        }
                    }
                    out.push(Pat::Class(ranges, neg));
                    i += end + 2;
                } else {
                    out.push(Pat::Lit('['));
                }
            } else {
                out.push(Pat::Lit(c));
            }
        }
        Pattern(out)
    }

    fn matches(&self, s: &[char]) -> bool {
        fn m(p: &[Pat], s: &[char]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some(Pat::Star) => (0..=s.len()).any(|i| m(&p[1..], &s[i..])),
                Some(Pat::Any) => !s.is_empty() && m(&p[1..], &s[1..]),
                Some(Pat::Lit(c)) => s.first() == Some(c) && m(&p[1..], &s[1..]),
                Some(Pat::Class(r, neg)) => {
                    s.first()
                        .is_some_and(|c| r.iter().any(|(a, b)| (a..=b).contains(&c)) != *neg)
                        && m(&p[1..], &s[1..])
                }
            }
        }
        m(&self.0, s)
    }
}

fn trim_prefix(p: &Pattern, v: &str, greedy: bool) -> String {
    let cs: Vec<char> = v.chars().collect();
    let mut lens: Vec<usize> = (0..=cs.len()).collect();
    if greedy {
        lens.reverse();
    }
    for n in lens {
        if p.matches(&cs[..n]) {
            return cs[n..].iter().collect();
        }
    }
    v.to_string()
}

fn trim_suffix(p: &Pattern, v: &str, greedy: bool) -> String {
    let cs: Vec<char> = v.chars().collect();
    let mut starts: Vec<usize> = (0..=cs.len()).collect();
    if !greedy {
        starts.reverse();
    }
    for s in starts {
        if p.matches(&cs[s..]) {
            return cs[..s].iter().collect();
        }
    }
    v.to_string()
}

fn replace(p: &Pattern, v: &str, repl: &str, all: bool) -> String {
    let cs: Vec<char> = v.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut done = false;
    while i < cs.len() {
        if !done {
            if let Some(end) = (i + 1..=cs.len()).rev().find(|&e| p.matches(&cs[i..e])) {
                out.push_str(repl);
                i = end;
                done = !all;
                continue;
            }
        }
        out.push(cs[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [("A", "a"), ("E", ""), ("P", "/usr/local/bin"), ("S", "x y")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn w(s: &str) -> String {
        Lex::new('\\').process_word(s, &env()).unwrap()
    }
    fn e(s: &str) -> String {
        Lex::new('\\').process_word(s, &env()).unwrap_err().0
    }

    #[test]
    fn simple_variables() {
        assert_eq!(w("$A"), "a");
        assert_eq!(w("${A}"), "a");
        assert_eq!(w("x$A.y"), "xa.y");
        assert_eq!(w("$NOPE"), "");
        assert_eq!(w("$"), "$");
        assert_eq!(w("a$ b"), "a$ b");
        assert_eq!(w("${A}_x"), "a_x");
        assert_eq!(w("$A_x"), "");
    }

    #[test]
    fn modifiers() {
        assert_eq!(w("${NOPE:-def}"), "def");
        assert_eq!(w("${E:-def}"), "def");
        assert_eq!(w("${E-def}"), "");
        assert_eq!(w("${NOPE-def}"), "def");
        assert_eq!(w("${A:-def}"), "a");
        assert_eq!(w("${A:+alt}"), "alt");
        assert_eq!(w("${E:+alt}"), "");
        assert_eq!(w("${E+alt}"), "alt");
        assert_eq!(w("${NOPE+alt}"), "");
        assert_eq!(w("${NOPE:-$A}"), "a");
        assert_eq!(w("${NOPE:-${A:+nested}}"), "nested");
        assert_eq!(w("${NOPE:-'q }'}"), "q }");
        assert_eq!(e("${NOPE?}"), "NOPE: is not allowed to be unset");
        assert_eq!(e("${E:?must set}"), "E: must set");
        assert_eq!(w("${A?x}"), "a");
    }

    #[test]
    fn patterns() {
        assert_eq!(w("${P#*/}"), "usr/local/bin");
        assert_eq!(w("${P##*/}"), "bin");
        assert_eq!(w("${P%/*}"), "/usr/local");
        assert_eq!(w("${P%%/l*}"), "/usr");
        assert_eq!(w("${P/usr/opt}"), "/opt/local/bin");
        assert_eq!(w("${P//\\//:}"), ":usr:local:bin");
        assert_eq!(w("${P/l?cal}"), "/usr//bin");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A\""), "a");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("\"\\$A\""), "$A");
        assert_eq!(w("\"a\\b\""), "a\\b");
        assert_eq!(w("a\\ b"), "a b");
        assert_eq!(w("'a\\b'"), "a\\b");
        assert_eq!(w("\"it's\""), "it's");
        assert_eq!(
            e("'abc"),
            "unexpected end of statement while looking for matching single-quote"
        );
        assert_eq!(
            e("\"abc"),
            "unexpected end of statement while looking for matching double-quote"
        );
        assert_eq!(e("${A"), "syntax error: missing '}'");
        assert_eq!(e("${}"), "syntax error: bad substitution");
        assert_eq!(e("${A:x}"), "unsupported modifier (:x) in substitution");
    }

    #[test]
    fn backtick_escape() {
        let l = Lex::new('`');
        assert_eq!(l.process_word("C:\\dir`$A", &env()).unwrap(), "C:\\dir$A");
    }

    #[test]
    fn words_split_unquoted_expansions_only() {
        let l = Lex::new('\\');
        assert_eq!(
            l.process_words("$S \"$S\" z", &env()).unwrap(),
            ["x", "y", "x y", "z"]
        );
        assert_eq!(l.process_words("  a   b ", &env()).unwrap(), ["a", "b"]);
    }

    #[test]
    fn raw_modes_and_skip_unset() {
        let mut l = Lex::new('\\');
        l.raw_quotes = true;
        l.raw_escapes = true;
        assert_eq!(
            l.process_words("RUN <<\"EOF\" a\\ b", &NoEnv).unwrap(),
            ["RUN", "<<\"EOF\"", "a\\ b"]
        );
        let mut l = Lex::new('\\');
        l.skip_unset_env = true;
        assert_eq!(
            l.process_word("$X ${Y} ${Z:-d} $A", &env()).unwrap(),
            "$X ${Y} ${Z:-d} a"
        );
    }

    #[test]
    fn matches_are_reported() {
        let (s, m) = Lex::new('\\')
            .process_word_with_matches("$A-${NOPE:-x}", &env())
            .unwrap();
        assert_eq!(s, "a-x");
        assert_eq!(m, ["A", "NOPE"]);
    }
}
