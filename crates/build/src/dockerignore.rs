//! `.dockerignore`: reading (Docker CLI's `ReadAll`) and matching (moby's
//! `patternmatcher`), which differ from gitignore: patterns are relative to the context root
//! (a leading `/` is dropped), `*` never crosses `/`, `**` matches any number of directories,
//! a pattern matching a directory excludes everything under it, `!` re-includes, and the
//! last matching pattern wins.

/// A malformed pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    #[error("syntax error in pattern: {0}")]
    BadPattern(String),
}

/// Reads a `.dockerignore` into its cleaned patterns (the `!` kept as a prefix).
pub fn read(content: &str) -> Vec<String> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut out = Vec::new();
    for line in content.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut p = if p.is_empty() {
            String::new()
        } else {
            clean(p)
        };
        if p.len() > 1 && p.starts_with('/') {
            p.remove(0);
        }
        out.push(if invert { format!("!{p}") } else { p });
    }
    out
}

/// Go's `filepath.Clean` for slash paths.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let j = parts.join("/");
    match (rooted, j.is_empty()) {
        (true, _) => format!("/{j}"),
        (false, true) => ".".into(),
        (false, false) => j,
    }
}

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    /// `*`: anything but `/`.
    Star,
    /// `?`: one character but `/`.
    Any,
    /// `**` followed by more: `(.*/)?`
    DirStar,
    /// `**` at the end: `.*`
    AllStar,
    Class(Vec<(char, char)>, bool),
}

#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    toks: Vec<Tok>,
}

/// Compiled patterns.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, IgnoreError> {
        let mut out = Vec::new();
        for p in patterns {
            let mut p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                if p.len() == 1 {
                    return Err(IgnoreError::IllegalExclusion);
                }
                p = &p[1..];
            }
            let p = clean(p);
            out.push(Pattern {
                exclusion,
                toks: compile(&p)?,
            });
        }
        Ok(Matcher { patterns: out })
    }

    /// Whether any `!` patterns exist (then excluded directories must still be walked).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Docker's `MatchesOrParentMatches`: is `path` (slash-separated, relative) excluded?
    pub fn matches(&self, path: &str) -> bool {
        let path = clean(path);
        let parents: Vec<&str> = path.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            let mut m = glob(&p.toks, &path.chars().collect::<Vec<_>>());
            if !m && parents.len() > 1 {
                for i in 1..parents.len() {
                    let pre = parents[..i].join("/");
                    if glob(&p.toks, &pre.chars().collect::<Vec<_>>()) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

fn compile(p: &str) -> Result<Vec<Tok>, IgnoreError> {
    let cs: Vec<char> = p.chars().collect();
    let mut t = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        i += 1;
        match c {
            '*' if cs.get(i) == Some(&'*') => {
                i += 1;
                if cs.get(i) == Some(&'/') {
                    i += 1;
                }
                t.push(if i == cs.len() {
                    Tok::AllStar
                } else {
                    Tok::DirStar
                });
            }
            '*' => t.push(Tok::Star),
            '?' => t.push(Tok::Any),
            '\\' => match cs.get(i) {
                Some(&n) => {
                    t.push(Tok::Lit(n));
                    i += 1;
                }
                None => return Err(IgnoreError::BadPattern(p.to_string())),
            },
            '[' => {
                let mut j = i;
                let neg = matches!(cs.get(j), Some('^'));
                if neg {
                    j += 1;
                }
                let mut ranges = Vec::new();
                let mut closed = false;
                let mut first = true;
                while j < cs.len() {
                    let mut a = cs[j];
                    if a == ']' && !first {
                        closed = true;
                        j += 1;
                        break;
                    }
                    first = false;
                    if a == '\\' {
                        j += 1;
                        a = *cs.get(j).ok_or_else(|| IgnoreError::BadPattern(p.into()))?;
                    }
                    j += 1;
                    if cs.get(j) == Some(&'-') && cs.get(j + 1).is_some_and(|c| *c != ']') {
                        let mut b = cs[j + 1];
                        j += 2;
                        if b == '\\' {
                            b = *cs.get(j).ok_or_else(|| IgnoreError::BadPattern(p.into()))?;
                            j += 1;
                        }
                        if b < a {
                            return Err(IgnoreError::BadPattern(p.to_string()));
                        }
                        ranges.push((a, b));
                    } else {
                        ranges.push((a, a));
                    }
                }
                if !closed {
                    return Err(IgnoreError::BadPattern(p.to_string()));
                }
                t.push(Tok::Class(ranges, neg));
                i = j;
            }
            ']' => return Err(IgnoreError::BadPattern(p.to_string())),
            c => t.push(Tok::Lit(c)),
        }
    }
    Ok(t)
}

fn glob(p: &[Tok], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(Tok::Lit(c)) => s.first() == Some(c) && glob(&p[1..], &s[1..]),
        Some(Tok::Any) => s.first().is_some_and(|c| *c != '/') && glob(&p[1..], &s[1..]),
        Some(Tok::Star) => {
            let mut i = 0;
            loop {
                if glob(&p[1..], &s[i..]) {
                    return true;
                }
                if i == s.len() || s[i] == '/' {
                    return false;
                }
                i += 1;
            }
        }
        Some(Tok::AllStar) => true,
        Some(Tok::DirStar) => {
            // `(.*/)?` then the rest.
            if glob(&p[1..], s) {
                return true;
            }
            (0..s.len()).any(|i| s[i] == '/' && glob(&p[1..], &s[i + 1..]))
        }
        Some(Tok::Class(r, neg)) => {
            s.first()
                .is_some_and(|c| *c != '/' && r.iter().any(|(a, b)| (a..=b).contains(&c)) != *neg)
                && glob(&p[1..], &s[1..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pats: &[&str]) -> Matcher {
        Matcher::new(pats).unwrap()
    }

    #[test]
    fn reading() {
        let r = read("# comment\n  \n/abs/x\n ! keep \n a/../b/./c \n#x\n **/*.o\n");
        assert_eq!(r, ["abs/x", "!keep", "b/c", "**/*.o"]);
        // A comment must start the line; indented '#' is a pattern.
        assert_eq!(read(" #x"), ["#x"]);
    }

    #[test]
    fn star_does_not_cross_slash() {
        let x = m(&["*.txt"]);
        assert!(x.matches("a.txt"));
        assert!(!x.matches("dir/a.txt"));
        let x = m(&["*/*.c"]);
        assert!(x.matches("src/a.c"));
        assert!(!x.matches("a.c"));
        assert!(!x.matches("x/y/a.c"));
    }

    #[test]
    fn double_star() {
        let x = m(&["**/*.o"]);
        assert!(x.matches("a.o"));
        assert!(x.matches("a/b/c.o"));
        let x = m(&["a/**/z"]);
        assert!(x.matches("a/z"));
        assert!(x.matches("a/b/c/z"));
        let x = m(&["build/**"]);
        assert!(x.matches("build/x/y"));
        assert!(!x.matches("build"));
    }

    #[test]
    fn directories_exclude_their_contents() {
        let x = m(&["node_modules"]);
        assert!(x.matches("node_modules"));
        assert!(x.matches("node_modules/a/b.js"));
        assert!(!x.matches("src/node_modules"));
    }

    #[test]
    fn exceptions_and_order() {
        let x = m(&["*.md", "!README.md"]);
        assert!(x.matches("CHANGES.md"));
        assert!(!x.matches("README.md"));
        let x = m(&["!README.md", "*.md"]);
        assert!(x.matches("README.md"));
        let x = m(&["docs", "!docs/keep"]);
        assert!(x.matches("docs/a"));
        assert!(!x.matches("docs/keep"));
        assert!(x.has_exclusions());
    }

    #[test]
    fn classes_and_escapes() {
        let x = m(&["file[0-9].txt", "a\\*b", "?x"]);
        assert!(x.matches("file3.txt"));
        assert!(!x.matches("filex.txt"));
        assert!(x.matches("a*b"));
        assert!(!x.matches("axb"));
        assert!(x.matches("ax"));
        assert!(!x.matches("/x"));
        let x = m(&["[^a]b"]);
        assert!(x.matches("cb"));
        assert!(!x.matches("ab"));
        // Regexp-special characters are literal.
        let x = m(&["a.b+(c)"]);
        assert!(x.matches("a.b+(c)"));
        assert!(!x.matches("axb+(c)"));
    }

    #[test]
    fn malformed_patterns() {
        assert_eq!(
            Matcher::new(&["!"]).unwrap_err(),
            IgnoreError::IllegalExclusion
        );
        assert!(matches!(
            Matcher::new(&["a[b"]),
            Err(IgnoreError::BadPattern(_))
        ));
        assert!(matches!(
            Matcher::new(&["[z-a]"]),
            Err(IgnoreError::BadPattern(_))
        ));
    }
}
