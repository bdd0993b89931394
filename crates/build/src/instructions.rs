//! Typed instructions and stages from the parse tree, with BuildKit's validation and
//! messages (`instructions.Parse`).

use crate::parser::{Dockerfile, Heredoc, Node, ParseError};

/// Arguments in shell form (one string) or exec/JSON form (argv).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    Shell(String),
    Exec(Vec<String>),
}

impl Args {
    fn from_node(n: &Node) -> Args {
        if n.json {
            Args::Exec(n.next.clone())
        } else {
            Args::Shell(n.next.first().cloned().unwrap_or_default())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyFlags {
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthFlags {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

/// One instruction in a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Run {
        args: Args,
        mounts: Vec<String>,
        network: Option<String>,
        security: Option<String>,
        heredocs: Vec<Heredoc>,
    },
    Cmd(Args),
    Entrypoint(Args),
    Shell(Vec<String>),
    Env(Vec<KeyValue>),
    Label(Vec<KeyValue>),
    Arg(Vec<(String, Option<String>)>),
    Expose(Vec<String>),
    Workdir(String),
    User(String),
    Volume(Vec<String>),
    StopSignal(String),
    Maintainer(String),
    Copy {
        sources: Vec<String>,
        dest: String,
        flags: CopyFlags,
        heredocs: Vec<Heredoc>,
    },
    Add {
        sources: Vec<String>,
        dest: String,
        flags: CopyFlags,
        heredocs: Vec<Heredoc>,
    },
    Healthcheck {
        /// `None` for `HEALTHCHECK NONE`.
        test: Option<Args>,
        flags: HealthFlags,
    },
    Onbuild(String),
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub instruction: Instruction,
    /// The instruction as written (continuations joined), for `Step n/m : …`.
    pub original: String,
    pub line: usize,
}

/// A `FROM` and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The image (unexpanded: it may refer to global ARGs).
    pub base: String,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    pub platform: Option<String>,
    pub original: String,
    pub line: usize,
    pub steps: Vec<Step>,
}

/// The whole build: global ARGs (before the first `FROM`) and stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub meta_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
}

fn e(line: usize, m: impl Into<String>) -> ParseError {
    ParseError::new(line, m)
}

/// Parsed `--flags` of one instruction.
struct Flags {
    values: Vec<(String, Option<String>)>,
}

#[derive(Clone, Copy, PartialEq)]
enum FlagType {
    Bool,
    Str,
    Strs,
}

impl Flags {
    fn parse(raw: &[String], allowed: &[(&str, FlagType)]) -> Result<Flags, String> {
        let mut values: Vec<(String, Option<String>)> = Vec::new();
        for a in raw {
            let Some(body) = a.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {a}"));
            };
            if a == "--" {
                break;
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some((_, ty)) = allowed.iter().find(|(n, _)| *n == name) else {
                return Err(format!("unknown flag: {name}"));
            };
            if *ty != FlagType::Strs && values.iter().any(|(n, _)| n == name) {
                return Err(format!("duplicate flag specified: {name}"));
            }
            let v = match ty {
                FlagType::Bool => match value {
                    Some("") => return Err(format!("missing a value on flag: {name}")),
                    None => "true".to_string(),
                    Some(v) => match v.to_ascii_lowercase().as_str() {
                        "true" => "true".into(),
                        "false" => "false".into(),
                        _ => {
                            return Err(format!(
                                "expecting boolean value for flag {name}, not: {v}"
                            ))
                        }
                    },
                },
                _ => match value {
                    None => return Err(format!("missing a value on flag: {name}")),
                    Some(v) => v.to_string(),
                },
            };
            values.push((name.to_string(), Some(v)));
        }
        Ok(Flags { values })
    }
    fn str(&self, n: &str) -> Option<String> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .and_then(|(_, v)| v.clone())
    }
    fn strs(&self, n: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(k, _)| k == n)
            .filter_map(|(_, v)| v.clone())
            .collect()
    }
    fn bool(&self, n: &str) -> bool {
        self.str(n).as_deref() == Some("true")
    }
}

const KNOWN: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

fn suggest(word: &str) -> Option<&'static str> {
    let w = word.to_lowercase();
    KNOWN
        .iter()
        .map(|k| (levenshtein(&w, k), *k))
        .filter(|(d, _)| *d <= 1 || (*d == 2 && w.len() >= 6))
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let c = if ca == *cb { prev[j] } else { prev[j] + 1 };
            cur.push(c.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn copy_flags(n: &Node, add: bool) -> Result<CopyFlags, String> {
    use FlagType::*;
    let mut allowed = vec![
        ("chown", Str),
        ("chmod", Str),
        ("link", Bool),
        ("exclude", Strs),
    ];
    if add {
        allowed.extend([("keep-git-dir", Bool), ("checksum", Str), ("unpack", Bool)]);
    } else {
        allowed.extend([("from", Str), ("parents", Bool)]);
    }
    let f = Flags::parse(&n.flags, &allowed)?;
    Ok(CopyFlags {
        from: f.str("from"),
        chown: f.str("chown"),
        chmod: f.str("chmod"),
        link: f.bool("link"),
        parents: f.bool("parents"),
        exclude: f.strs("exclude"),
        checksum: f.str("checksum"),
        keep_git_dir: f.bool("keep-git-dir"),
    })
}

fn no_flags(n: &Node) -> Result<(), String> {
    Flags::parse(&n.flags, &[]).map(|_| ())
}

fn key_values(n: &Node) -> Vec<KeyValue> {
    n.next
        .chunks(3)
        .map(|c| KeyValue {
            key: c[0].clone(),
            value: c.get(1).cloned().unwrap_or_default(),
        })
        .collect()
}

fn arg_pairs(n: &Node) -> Vec<(String, Option<String>)> {
    n.next
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w.clone(), None),
        })
        .collect()
}

/// Types one node (not `FROM`).
pub fn parse_instruction(n: &Node) -> Result<Instruction, ParseError> {
    let line = n.start_line;
    let up = n.value.to_uppercase();
    let at_least_one = || e(line, format!("{up} requires at least one argument"));
    let exactly_one = || e(line, format!("{up} requires exactly one argument"));
    let fl = |r: Result<(), String>| r.map_err(|m| e(line, m));
    use FlagType::*;
    Ok(match &n.value[..] {
        "run" => {
            let f = Flags::parse(
                &n.flags,
                &[("mount", Strs), ("network", Str), ("security", Str)],
            )
            .map_err(|m| e(line, m))?;
            if n.next.is_empty() && n.heredocs.is_empty() {
                return Err(at_least_one());
            }
            Instruction::Run {
                args: Args::from_node(n),
                mounts: f.strs("mount"),
                network: f.str("network"),
                security: f.str("security"),
                heredocs: n.heredocs.clone(),
            }
        }
        "cmd" => {
            fl(no_flags(n))?;
            Instruction::Cmd(Args::from_node(n))
        }
        "entrypoint" => {
            fl(no_flags(n))?;
            Instruction::Entrypoint(Args::from_node(n))
        }
        "shell" => {
            fl(no_flags(n))?;
            if !n.json {
                return Err(e(line, "SHELL requires the arguments to be in JSON form"));
            }
            if n.next.is_empty() {
                return Err(e(line, "SHELL requires at least one argument"));
            }
            Instruction::Shell(n.next.clone())
        }
        "env" => {
            fl(no_flags(n))?;
            if n.next.is_empty() {
                return Err(at_least_one());
            }
            let kv = key_values(n);
            if kv.iter().any(|k| k.key.is_empty()) {
                return Err(e(line, "ENV names can not be blank"));
            }
            Instruction::Env(kv)
        }
        "label" => {
            fl(no_flags(n))?;
            if n.next.is_empty() {
                return Err(at_least_one());
            }
            let kv = key_values(n);
            if kv.iter().any(|k| k.key.is_empty()) {
                return Err(e(line, "LABEL names can not be blank"));
            }
            Instruction::Label(kv)
        }
        "arg" => {
            fl(no_flags(n))?;
            if n.next.is_empty() {
                return Err(e(line, "ARG requires at least one argument"));
            }
            let a = arg_pairs(n);
            if a.iter().any(|(k, _)| k.is_empty()) {
                return Err(e(line, "ARG names can not be blank"));
            }
            Instruction::Arg(a)
        }
        "expose" => {
            fl(no_flags(n))?;
            if n.next.is_empty() {
                return Err(at_least_one());
            }
            Instruction::Expose(n.next.clone())
        }
        "workdir" | "user" | "stopsignal" | "maintainer" => {
            fl(no_flags(n))?;
            let Some(v) = n.next.first().cloned() else {
                return Err(exactly_one());
            };
            match &n.value[..] {
                "workdir" => Instruction::Workdir(v),
                "user" => Instruction::User(v),
                "stopsignal" => Instruction::StopSignal(v),
                _ => Instruction::Maintainer(v),
            }
        }
        "volume" => {
            fl(no_flags(n))?;
            if n.next.is_empty() {
                return Err(at_least_one());
            }
            if n.next.iter().any(|v| v.trim().is_empty()) {
                return Err(e(line, "VOLUME specified can not be an empty string"));
            }
            Instruction::Volume(n.next.clone())
        }
        "copy" | "add" => {
            let add = n.value == "add";
            let flags = copy_flags(n, add).map_err(|m| e(line, m))?;
            let need = if n.heredocs.is_empty() { 2 } else { 1 };
            if n.next.len() < need {
                return Err(e(line, format!("{up} requires at least two arguments, but only one was provided. Destination could not be determined")));
            }
            let mut sources = n.next.clone();
            let dest = sources.pop().unwrap_or_default();
            if add {
                Instruction::Add {
                    sources,
                    dest,
                    flags,
                    heredocs: n.heredocs.clone(),
                }
            } else {
                Instruction::Copy {
                    sources,
                    dest,
                    flags,
                    heredocs: n.heredocs.clone(),
                }
            }
        }
        "healthcheck" => {
            let f = Flags::parse(
                &n.flags,
                &[
                    ("interval", Str),
                    ("timeout", Str),
                    ("start-period", Str),
                    ("start-interval", Str),
                    ("retries", Str),
                ],
            )
            .map_err(|m| e(line, m))?;
            let Some(kind) = n.next.first() else {
                return Err(at_least_one());
            };
            let flags = HealthFlags {
                interval: f.str("interval"),
                timeout: f.str("timeout"),
                start_period: f.str("start-period"),
                start_interval: f.str("start-interval"),
                retries: f.str("retries"),
            };
            for (name, v) in [
                ("interval", &flags.interval),
                ("timeout", &flags.timeout),
                ("start-period", &flags.start_period),
                ("start-interval", &flags.start_interval),
            ] {
                if let Some(v) = v {
                    parse_duration(v).map_err(|m| e(line, format!("{name}: {m}")))?;
                }
            }
            if let Some(r) = &flags.retries {
                match r.parse::<i64>() {
                    Ok(n) if n >= 0 => {}
                    Ok(_) => return Err(e(line, "--retries cannot be negative")),
                    Err(_) => {
                        return Err(e(
                            line,
                            format!("strconv.ParseInt: parsing {r:?}: invalid syntax"),
                        ))
                    }
                }
            }
            match kind.to_uppercase().as_str() {
                "NONE" => {
                    if n.next.len() > 1 {
                        return Err(e(line, "HEALTHCHECK NONE takes no arguments"));
                    }
                    Instruction::Healthcheck { test: None, flags }
                }
                "CMD" => {
                    let args = if n.json {
                        Args::Exec(n.next[1..].to_vec())
                    } else {
                        Args::Shell(n.next.get(1).cloned().unwrap_or_default())
                    };
                    if matches!(&args, Args::Shell(s) if s.is_empty())
                        || matches!(&args, Args::Exec(v) if v.is_empty())
                    {
                        return Err(e(line, "Missing command after HEALTHCHECK CMD"));
                    }
                    Instruction::Healthcheck {
                        test: Some(args),
                        flags,
                    }
                }
                other => {
                    return Err(e(
                        line,
                        format!("Unknown type {other:?} in HEALTHCHECK (try CMD)"),
                    ))
                }
            }
        }
        "onbuild" => {
            let Some(c) = &n.child else {
                return Err(at_least_one());
            };
            match &c.value[..] {
                "onbuild" => {
                    return Err(e(
                        line,
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ))
                }
                "maintainer" | "from" => {
                    return Err(e(
                        line,
                        format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            c.value.to_uppercase()
                        ),
                    ))
                }
                _ => {}
            }
            let mut c = (**c).clone();
            c.start_line = line;
            parse_instruction(&c)?;
            let text = n.original.trim_start();
            let text = text[text.find(char::is_whitespace).unwrap_or(text.len())..].trim();
            Instruction::Onbuild(text.to_string())
        }
        "from" => return Err(e(line, "FROM is a stage, not a step")),
        other => {
            let mut m = format!("unknown instruction: {}", other.to_uppercase());
            if let Some(s) = suggest(other) {
                m.push_str(&format!(" (did you mean {}?)", s.to_lowercase()));
            }
            return Err(e(line, m));
        }
    })
}

/// Go's `time.ParseDuration`, returning nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration {s:?}");
    if s == "0" {
        return Ok(0);
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {s:?}"))?;
        if n == 0 {
            return Err(bad());
        }
        let num: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Ok(if neg { -(total as i64) } else { total as i64 })
}

/// `^[a-z][a-z0-9-_.]*$` (case-insensitively).
fn valid_stage_name(n: &str) -> bool {
    let mut cs = n.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic())
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_from(n: &Node) -> Result<Stage, ParseError> {
    let line = n.start_line;
    let f = Flags::parse(&n.flags, &[("platform", FlagType::Str)]).map_err(|m| e(line, m))?;
    let name = match n.next.len() {
        1 => None,
        3 if n.next[1].eq_ignore_ascii_case("as") => {
            let name = n.next[2].to_lowercase();
            if !valid_stage_name(&name) {
                return Err(e(line, format!("invalid name for build stage: {:?}, name can't start with a number or contain symbols", n.next[2])));
            }
            Some(name)
        }
        _ => return Err(e(line, "FROM requires either one or three arguments")),
    };
    Ok(Stage {
        base: n.next[0].clone(),
        name,
        platform: f.str("platform"),
        original: n.original.clone(),
        line,
        steps: Vec::new(),
    })
}

/// Types a parsed Dockerfile into stages, with BuildKit's checks.
pub fn parse(df: &Dockerfile) -> Result<Build, ParseError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for n in &df.nodes {
        if n.value == "from" {
            let s = parse_from(n)?;
            if let Some(name) = &s.name {
                if stages.iter().any(|o| o.name.as_deref() == Some(name)) {
                    return Err(e(n.start_line, format!("duplicate stage name {name:?}")));
                }
            }
            stages.push(s);
            continue;
        }
        let ins = parse_instruction(n)?;
        match stages.last_mut() {
            Some(s) => s.steps.push(Step {
                instruction: ins,
                original: n.original.trim().to_string(),
                line: n.start_line,
            }),
            None => match ins {
                Instruction::Arg(a) => meta_args.extend(a),
                _ => return Err(e(n.start_line, "no build stage in current context")),
            },
        }
    }
    if stages.is_empty() {
        return Err(e(
            df.nodes.last().map(|n| n.start_line).unwrap_or(1),
            "dockerfile contains no stages to build",
        ));
    }
    Ok(Build { meta_args, stages })
}

impl Build {
    /// The index of the stage called `name` (or numbered `name`).
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        let l = name.to_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(l.as_str()))
            .or_else(|| l.parse::<usize>().ok().filter(|i| *i < self.stages.len()))
    }

    /// Stages a stage depends on directly: `FROM <stage>` and `COPY --from=<stage>` /
    /// `RUN --mount=from=<stage>` (unexpanded names; image names are not stages).
    pub fn deps(&self, i: usize) -> Vec<usize> {
        let s = &self.stages[i];
        let mut d = Vec::new();
        let mut add = |name: &str| {
            if let Some(j) = self.stage_index(name) {
                if !d.contains(&j) {
                    d.push(j);
                }
            }
        };
        if let Some(j) = self.stages[..i]
            .iter()
            .position(|o| o.name.as_deref() == Some(s.base.to_lowercase().as_str()))
        {
            add(&j.to_string());
        }
        for st in &s.steps {
            match &st.instruction {
                Instruction::Copy { flags, .. } => {
                    if let Some(f) = &flags.from {
                        add(f);
                    }
                }
                Instruction::Run { mounts, .. } => {
                    for m in mounts {
                        for kv in m.split(',') {
                            if let Some(f) = kv.strip_prefix("from=") {
                                add(f);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        d
    }

    /// The stages needed to build `target` (default: the last), in build order; a cycle or
    /// an unknown target is an error.
    pub fn plan(&self, target: Option<&str>) -> Result<Vec<usize>, String> {
        let t = match target {
            None | Some("") => self.stages.len() - 1,
            Some(t) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.to_lowercase().as_str()))
                .ok_or_else(|| format!("target stage {t:?} could not be found"))?,
        };
        let mut order = Vec::new();
        let mut state = vec![0u8; self.stages.len()];
        fn visit(
            b: &Build,
            i: usize,
            state: &mut [u8],
            order: &mut Vec<usize>,
        ) -> Result<(), String> {
            match state[i] {
                2 => return Ok(()),
                1 => {
                    return Err(format!(
                        "circular dependency detected on stage: {}",
                        b.stages[i].name.clone().unwrap_or_else(|| i.to_string())
                    ))
                }
                _ => {}
            }
            state[i] = 1;
            for d in b.deps(i) {
                visit(b, d, state, order)?;
            }
            state[i] = 2;
            order.push(i);
            Ok(())
        }
        visit(self, t, &mut state, &mut order)?;
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser;

    fn build(src: &str) -> Result<Build, ParseError> {
        parse(&parser::parse(src)?)
    }
    fn err(src: &str) -> String {
        build(src).unwrap_err().to_string()
    }

    #[test]
    fn stages_and_meta_args() {
        let b =
            build("ARG V=1\nFROM busybox:$V AS Base\nRUN x\nFROM base\nCOPY --from=base /a /b\n")
                .unwrap();
        assert_eq!(b.meta_args, [("V".to_string(), Some("1".to_string()))]);
        assert_eq!(b.stages.len(), 2);
        assert_eq!(b.stages[0].name.as_deref(), Some("base"));
        assert_eq!(b.deps(1), [0]);
        assert_eq!(b.plan(None).unwrap(), [0, 1]);
        assert_eq!(b.plan(Some("base")).unwrap(), [0]);
        assert!(b.plan(Some("nope")).is_err());
    }

    #[test]
    fn instruction_errors() {
        assert_eq!(err("FROM a\nFOO bar\n"), "line 2: unknown instruction: FOO");
        assert_eq!(
            err("FROM a\nRUNN x\n"),
            "line 2: unknown instruction: RUNN (did you mean run?)"
        );
        assert_eq!(err("RUN x\n"), "line 1: no build stage in current context");
        assert_eq!(
            err("ARG x\n"),
            "line 1: dockerfile contains no stages to build"
        );
        assert_eq!(
            err("FROM a b\n"),
            "line 1: FROM requires either one or three arguments"
        );
        assert_eq!(err("FROM a AS 1x\n"), "line 1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols");
        assert_eq!(
            err("FROM a AS x\nFROM b AS X\n"),
            "line 2: duplicate stage name \"x\""
        );
        assert_eq!(
            err("FROM a\nCOPY --foo=1 a b\n"),
            "line 2: unknown flag: foo"
        );
        assert_eq!(
            err("FROM a\nCOPY --from a b\n"),
            "line 2: missing a value on flag: from"
        );
        assert_eq!(
            err("FROM a\nCOPY --link=maybe a b\n"),
            "line 2: expecting boolean value for flag link, not: maybe"
        );
        assert_eq!(
            err("FROM a\nCOPY --chown=1 --chown=2 a b\n"),
            "line 2: duplicate flag specified: chown"
        );
        assert_eq!(err("FROM a\nWORKDIR --x=1 /a\n"), "line 2: unknown flag: x");
        assert_eq!(err("FROM a\nCOPY a\n"), "line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined");
        assert_eq!(
            err("FROM a\nWORKDIR\n"),
            "line 2: WORKDIR requires exactly one argument"
        );
        assert_eq!(
            err("FROM a\nSHELL sh -c\n"),
            "line 2: SHELL requires the arguments to be in JSON form"
        );
        assert_eq!(
            err("FROM a\nHEALTHCHECK --interval=5 CMD x\n"),
            "line 2: interval: time: missing unit in duration \"5\""
        );
        assert_eq!(
            err("FROM a\nHEALTHCHECK NONE x\n"),
            "line 2: HEALTHCHECK NONE takes no arguments"
        );
        assert_eq!(
            err("FROM a\nHEALTHCHECK X y\n"),
            "line 2: Unknown type \"X\" in HEALTHCHECK (try CMD)"
        );
        assert_eq!(
            err("FROM a\nONBUILD ONBUILD RUN x\n"),
            "line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
        assert_eq!(
            err("FROM a\nONBUILD FROM x\n"),
            "line 2: FROM isn't allowed as an ONBUILD trigger"
        );
        assert_eq!(
            err("FROM a\nONBUILD FOO x\n"),
            "line 2: unknown instruction: FOO"
        );
    }

    #[test]
    fn typed_instructions() {
        let b = build("FROM a\nRUN --mount=type=cache,target=/c --network=none make\nCOPY --chown=1:2 --chmod=644 a b /d/\nHEALTHCHECK --interval=1m30s --retries=3 CMD [\"true\"]\nENV A=1 B=2\nARG X Y=2\nONBUILD RUN echo\nCOPY <<EOF /f\nhi\nEOF\n").unwrap();
        let s = &b.stages[0].steps;
        assert!(
            matches!(&s[0].instruction, Instruction::Run { mounts, network: Some(n), args: Args::Shell(c), .. } if mounts.len() == 1 && n == "none" && c == "make")
        );
        assert!(
            matches!(&s[1].instruction, Instruction::Copy { sources, dest, flags, .. } if sources.len() == 2 && dest == "/d/" && flags.chmod.as_deref() == Some("644"))
        );
        assert!(
            matches!(&s[2].instruction, Instruction::Healthcheck { test: Some(Args::Exec(v)), flags } if v == &["true"] && flags.retries.as_deref() == Some("3"))
        );
        assert_eq!(
            s[3].instruction,
            Instruction::Env(vec![
                KeyValue {
                    key: "A".into(),
                    value: "1".into()
                },
                KeyValue {
                    key: "B".into(),
                    value: "2".into()
                }
            ])
        );
        assert_eq!(
            s[4].instruction,
            Instruction::Arg(vec![("X".into(), None), ("Y".into(), Some("2".into()))])
        );
        assert_eq!(s[5].instruction, Instruction::Onbuild("RUN echo".into()));
        assert!(
            matches!(&s[6].instruction, Instruction::Copy { sources, heredocs, .. } if sources == &["<<EOF"] && heredocs.len() == 1)
        );
    }

    #[test]
    fn cycles() {
        let b =
            build("FROM a AS x\nCOPY --from=y /a /a\nFROM b AS y\nCOPY --from=x /a /a\n").unwrap();
        assert!(b
            .plan(Some("y"))
            .unwrap_err()
            .starts_with("circular dependency detected on stage"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
