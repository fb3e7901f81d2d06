//! Hand-rolled command-line parsing.

use std::ffi::OsString;
use std::time::Duration;

pub const USAGE: &str = "usage: skiff-probe [--exit N] [--sleep SECS] [--sysctl NAME]... \
                         [--write PATH CONTENT]... [--stdin]";

/// How long `--sleep` waits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sleep {
    For(Duration),
    /// Too long to represent (e.g. `inf`): sleep until killed.
    Forever,
}

#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub exit_code: Option<i32>,
    pub sleep: Option<Sleep>,
    pub sysctls: Vec<String>,
    pub writes: Vec<(OsString, OsString)>,
    pub read_stdin: bool,
}

/// Parses the arguments after argv[0].
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Options, String> {
    let mut args = args.into_iter();
    let mut opts = Options::default();
    while let Some(arg) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .ok_or_else(|| format!("{} requires {what}", arg.to_string_lossy()))
        };
        match arg.to_str() {
            Some("--exit") => {
                let n = value("an exit code")?;
                let n = n.to_string_lossy();
                let code = n
                    .parse()
                    .map_err(|_| format!("--exit: invalid code {n:?}"))?;
                opts.exit_code = Some(code);
            }
            Some("--sleep") => {
                let s = value("a number of seconds")?;
                opts.sleep = Some(parse_sleep(&s.to_string_lossy())?);
            }
            Some("--sysctl") => {
                let name = value("a sysctl name")?;
                opts.sysctls.push(name.to_string_lossy().into_owned());
            }
            Some("--write") => {
                let path = value("PATH and CONTENT")?;
                let content = value("PATH and CONTENT")?;
                opts.writes.push((path, content));
            }
            Some("--stdin") => opts.read_stdin = true,
            _ => return Err(format!("unknown argument {:?}", arg.to_string_lossy())),
        }
    }
    Ok(opts)
}

fn parse_sleep(s: &str) -> Result<Sleep, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("--sleep: invalid duration {s:?}"))?;
    if secs.is_nan() || secs < 0.0 {
        return Err(format!("--sleep: invalid duration {s:?}"));
    }
    Ok(Duration::try_from_secs_f64(secs).map_or(Sleep::Forever, Sleep::For))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Options, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn parses_combined_options() {
        let o = parse_strs(&[
            "--exit",
            "3",
            "--sleep",
            "0.5",
            "--sysctl",
            "net.ipv4.ip_forward",
            "--sysctl",
            "kernel.hostname",
            "--write",
            "/tmp/x",
            "hi",
            "--stdin",
        ])
        .unwrap();
        assert_eq!(o.exit_code, Some(3));
        assert_eq!(o.sleep, Some(Sleep::For(Duration::from_millis(500))));
        assert_eq!(o.sysctls, vec!["net.ipv4.ip_forward", "kernel.hostname"]);
        assert_eq!(
            o.writes,
            vec![(OsString::from("/tmp/x"), OsString::from("hi"))]
        );
        assert!(o.read_stdin);
        assert_eq!(parse_strs(&[]).unwrap(), Options::default());
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse_strs(&["--bogus"]).is_err());
        assert!(parse_strs(&["--exit"]).is_err());
        assert!(parse_strs(&["--exit", "x"]).is_err());
        assert!(parse_strs(&["--sleep", "-1"]).is_err());
        assert!(parse_strs(&["--sleep", "nan"]).is_err());
        assert!(parse_strs(&["--write", "/only-path"]).is_err());
        assert_eq!(
            parse_strs(&["--sleep", "inf"]).unwrap().sleep,
            Some(Sleep::Forever)
        );
    }
}
