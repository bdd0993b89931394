//! Build checks (`build --check`): BuildKit's rule names and messages, for what can be
//! decided from the Dockerfile alone.

use crate::instructions::{Args, Build, Instruction};
use crate::parser::{Dockerfile, Node, Warning};

fn w(line: usize, rule: &'static str, message: String) -> Warning {
    Warning {
        line,
        rule,
        message,
    }
}

fn keyword(n: &Node) -> &str {
    let t = n.original.trim_start();
    &t[..t.find(char::is_whitespace).unwrap_or(t.len())]
}

const SECRET_WORDS: &[&str] = &[
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];
const NOT_SECRET: &[&str] = &["public"];

fn looks_secret(name: &str) -> bool {
    let lower = name.to_lowercase();
    let parts: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    if parts.iter().any(|p| NOT_SECRET.contains(p)) {
        return false;
    }
    parts.iter().any(|p| SECRET_WORDS.contains(p))
}

/// The warnings for a Dockerfile that parsed.
pub fn lint(df: &Dockerfile, build: &Build) -> Vec<Warning> {
    let mut out = df.warnings.clone();
    // ConsistentInstructionCasing: compare each keyword with the majority.
    let (mut upper, mut lower) = (0, 0);
    for n in &df.nodes {
        let k = keyword(n);
        if k == k.to_uppercase() {
            upper += 1;
        } else if k == k.to_lowercase() {
            lower += 1;
        }
    }
    let majority_upper = upper >= lower;
    for n in &df.nodes {
        let k = keyword(n);
        let ok = if majority_upper {
            k == k.to_uppercase()
        } else {
            k == k.to_lowercase()
        };
        if !ok {
            out.push(w(
                n.start_line,
                "ConsistentInstructionCasing",
                format!(
                    "Command '{k}' should match the case of the command majority ({})",
                    if majority_upper {
                        "uppercase"
                    } else {
                        "lowercase"
                    }
                ),
            ));
        }
        if n.value == "from" && n.next.len() == 3 {
            let as_kw = &n.next[1];
            let from_upper = k == k.to_uppercase();
            let as_upper = as_kw == &as_kw.to_uppercase();
            if from_upper != as_upper {
                out.push(w(
                    n.start_line,
                    "FromAsCasing",
                    format!("'{as_kw}' and '{k}' keywords' casing do not match"),
                ));
            }
            let name = &n.next[2];
            if name != &name.to_lowercase() {
                out.push(w(
                    n.start_line,
                    "StageNameCasing",
                    format!("Stage name '{name}' should be lowercase"),
                ));
            }
            if matches!(name.to_lowercase().as_str(), "scratch" | "context") {
                out.push(w(
                    n.start_line,
                    "ReservedStageName",
                    format!(
                        "'{}' is reserved and should not be used as a stage name",
                        name.to_lowercase()
                    ),
                ));
            }
        }
        let looks_json = |n: &Node| {
            n.next
                .first()
                .is_some_and(|a| a.trim_start().starts_with('['))
        };
        if matches!(&n.value[..], "cmd" | "entrypoint" | "run" | "shell")
            && !n.json
            && looks_json(n)
        {
            out.push(w(
                n.start_line,
                "InvalidJSONArray",
                format!("{} arguments start with '[' but are not a valid JSON array of strings; they run in shell form", n.value.to_uppercase()),
            ));
        }
        if (n.value == "env" || n.value == "label") && n.next.len() == 3 && n.next[2].is_empty() {
            let up = n.value.to_uppercase();
            out.push(w(
                n.start_line,
                "LegacyKeyValueFormat",
                format!(
                    "\"{up} key=value\" should be used instead of legacy \"{up} key value\" format"
                ),
            ));
        }
    }
    let meta: Vec<&str> = build.meta_args.iter().map(|(k, _)| k.as_str()).collect();
    for s in &build.stages {
        // UndefinedArgInFrom
        let mut lex = crate::shell::Lex::new(df.escape);
        lex.skip_unset_env = false;
        let probe = |name: &str| Some(name.to_string());
        if let Ok((_, used)) = lex.process_word_with_matches(&s.base, &probe) {
            for u in used {
                if !meta.contains(&u.as_str()) && !is_builtin_arg(&u) {
                    out.push(w(
                        s.line,
                        "UndefinedArgInFrom",
                        format!("FROM argument '{u}' is not declared"),
                    ));
                }
            }
        }
        let mut cmd = 0;
        let mut entry = 0;
        let mut hc = 0;
        let mut abs_workdir = false;
        for st in &s.steps {
            match &st.instruction {
                Instruction::Cmd(a) | Instruction::Entrypoint(a) => {
                    let which = if matches!(st.instruction, Instruction::Cmd(_)) {
                        cmd += 1;
                        "CMD"
                    } else {
                        entry += 1;
                        "ENTRYPOINT"
                    };
                    if matches!(a, Args::Shell(_)) {
                        out.push(w(
                            st.line,
                            "JSONArgsRecommended",
                            format!("JSON arguments recommended for {which} to prevent unintended behavior related to OS signals"),
                        ));
                    }
                    let count = if which == "CMD" { cmd } else { entry };
                    if count > 1 {
                        out.push(w(
                            st.line,
                            "MultipleInstructionsDisallowed",
                            format!("Multiple {which} instructions should not be used in the same stage because only the last one will be used"),
                        ));
                    }
                }
                Instruction::Healthcheck { .. } => {
                    hc += 1;
                    if hc > 1 {
                        out.push(w(
                            st.line,
                            "MultipleInstructionsDisallowed",
                            "Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used".into(),
                        ));
                    }
                }
                Instruction::Maintainer(_) => out.push(w(
                    st.line,
                    "MaintainerDeprecated",
                    "Maintainer instruction is deprecated in favor of using label".into(),
                )),
                Instruction::Workdir(d) => {
                    if d.starts_with('/') || d.starts_with('$') {
                        abs_workdir = true;
                    } else if !abs_workdir {
                        out.push(w(
                            st.line,
                            "WorkdirRelativePath",
                            format!("Relative workdir {d:?} can have unexpected results if the base image changes"),
                        ));
                    }
                }
                Instruction::Expose(ports) => {
                    for p in ports {
                        if let Some((_, proto)) = p.split_once('/') {
                            if proto != proto.to_lowercase() {
                                out.push(w(
                                    st.line,
                                    "ExposeProtoCasing",
                                    format!("Defined protocol '{p}' in EXPOSE instruction should be lowercase"),
                                ));
                            }
                        }
                    }
                }
                Instruction::Arg(a) => {
                    for (k, _) in a {
                        if looks_secret(k) {
                            out.push(w(st.line, "SecretsUsedInArgOrEnv", format!("Do not use ARG or ENV instructions for sensitive data (ARG {k:?})")));
                        }
                    }
                }
                Instruction::Env(kv) => {
                    for k in kv {
                        if looks_secret(&k.key) {
                            out.push(w(st.line, "SecretsUsedInArgOrEnv", format!("Do not use ARG or ENV instructions for sensitive data (ENV {:?})", k.key)));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out.sort_by_key(|w| w.line);
    out
}

/// ARGs BuildKit defines without a declaration.
pub fn is_builtin_arg(name: &str) -> bool {
    matches!(
        name,
        "BUILDPLATFORM"
            | "BUILDOS"
            | "BUILDARCH"
            | "BUILDVARIANT"
            | "TARGETPLATFORM"
            | "TARGETOS"
            | "TARGETARCH"
            | "TARGETVARIANT"
            | "TARGETSTAGE"
            | "BUILDKIT_SBOM_SCAN_STAGE"
            | "HTTP_PROXY"
            | "http_proxy"
            | "HTTPS_PROXY"
            | "https_proxy"
            | "FTP_PROXY"
            | "ftp_proxy"
            | "NO_PROXY"
            | "no_proxy"
            | "ALL_PROXY"
            | "all_proxy"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{instructions, parser};

    fn rules(src: &str) -> Vec<(usize, &'static str)> {
        let df = parser::parse(src).unwrap();
        let b = instructions::parse(&df).unwrap();
        lint(&df, &b)
            .into_iter()
            .map(|w| (w.line, w.rule))
            .collect()
    }

    #[test]
    fn clean_dockerfile_has_no_warnings() {
        assert!(
            rules("ARG V=1\nFROM busybox:${V} AS build\nWORKDIR /src\nCMD [\"sh\"]\n").is_empty()
        );
    }

    #[test]
    fn rules_fire() {
        assert_eq!(
            rules("FROM a\nCMD echo\nCMD [\"x\"]\n"),
            [
                (2, "JSONArgsRecommended"),
                (3, "MultipleInstructionsDisallowed")
            ]
        );
        assert_eq!(
            rules("FROM a as Build\n"),
            [(1, "FromAsCasing"), (1, "StageNameCasing")]
        );
        assert_eq!(
            rules("FROM a\nrun x\n"),
            [(2, "ConsistentInstructionCasing")]
        );
        assert_eq!(
            rules("FROM a\nMAINTAINER me\n"),
            [(2, "MaintainerDeprecated")]
        );
        assert_eq!(rules("FROM a\nWORKDIR app\n"), [(2, "WorkdirRelativePath")]);
        assert_eq!(rules("FROM a\nWORKDIR /x\nWORKDIR app\n"), []);
        assert_eq!(rules("FROM $IMG\n"), [(1, "UndefinedArgInFrom")]);
        assert_eq!(rules("FROM a\nENV K v\n"), [(2, "LegacyKeyValueFormat")]);
        assert_eq!(rules("FROM a\nEXPOSE 80/TCP\n"), [(2, "ExposeProtoCasing")]);
        assert_eq!(
            rules("FROM a\nARG DB_PASSWORD\n"),
            [(2, "SecretsUsedInArgOrEnv")]
        );
        assert_eq!(rules("FROM a\nRUN [\"x\"\n"), [(2, "InvalidJSONArray")]);
        assert_eq!(
            rules("FROM a\nRUN a \\\n\n b\n"),
            [(2, "NoEmptyContinuation")]
        );
        assert_eq!(rules("FROM a AS scratch\n"), [(1, "ReservedStageName")]);
    }
}
