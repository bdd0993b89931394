//! Signal names and numbers as Docker accepts them ("KILL", "SIGKILL", "9").

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// Parse a signal as Docker does; `None` for an invalid one.
pub fn parse(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rt) = name.strip_prefix("RTMIN+") {
        return rt.parse::<i32>().ok().map(|n| 34 + n).filter(|n| *n <= 64);
    }
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::parse;
    #[test]
    fn parses_docker_forms() {
        assert_eq!(parse("KILL"), Some(9));
        assert_eq!(parse("SIGTERM"), Some(15));
        assert_eq!(parse("sighup"), Some(1));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("SIGRTMIN+3"), Some(37));
        assert_eq!(parse("NOPE"), None);
        assert_eq!(parse("0"), None);
    }
}
