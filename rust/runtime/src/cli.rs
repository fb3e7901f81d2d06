//! runc's command line: global options, then a command and its options.
//!
//! Like runc (urfave/cli), options take one or two dashes and their value either
//! after `=` or as the next argument; options end at the first positional argument
//! or at `--`.

use crate::error::{Error, Result};

pub const DEFAULT_ROOT: &str = "/run/skiff-runtime";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Global {
    pub root: String,
    pub log: Option<String>,
    pub log_format: LogFormat,
    pub debug: bool,
    pub systemd_cgroup: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: String,
    pub pid_file: Option<String>,
    pub console_socket: Option<String>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Not a command-line option: for a caller that runs `create` in its own
    /// process (skiff-monitor), the fds the container's init takes as its 0, 1 and
    /// 2. None: init keeps the ones it inherits (the runtime's own, under the CLI).
    pub stdio: Option<[std::os::fd::RawFd; 3]>,
    /// Not a command-line option either: a cgroup made ahead of need
    /// (cgroups::make_spare) to rename into place instead of making one.
    pub spare_cgroup: Option<String>,
    /// Not a command-line option: a container made ahead of need, whose init waits
    /// for its process with the start (see init.rs; skiffd sends it, skiff.engine.monitor.start_standby);
    /// implies create's run mode (no exec fifo: the caller keeps the sync socket).
    pub defer_process: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    pub id: String,
    pub process: Option<String>,
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<String>,
    pub pid_file: Option<String>,
    pub detach: bool,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub cap: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: u32,
}

#[derive(Debug, Clone, Default)]
pub struct UpdateOpts {
    pub id: String,
    pub resources: Option<String>,
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

#[derive(Debug, Clone)]
pub enum Command {
    Version,
    Create(CreateOpts),
    Run {
        create: CreateOpts,
        detach: bool,
    },
    Start {
        id: String,
    },
    State {
        id: String,
    },
    Kill {
        id: String,
        signal: String,
        all: bool,
    },
    Delete {
        id: String,
        force: bool,
    },
    Exec(ExecOpts),
    List {
        json: bool,
        quiet: bool,
    },
    Ps {
        id: String,
        json: bool,
        ps_args: Vec<String>,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Update(UpdateOpts),
    Features,
    Spec {
        bundle: String,
        rootless: bool,
    },
    Help,
}

/// Splits `--name=value` / `-name value` forms; yields (name, inline value).
fn option_name(arg: &str) -> Option<(&str, Option<&str>)> {
    let body = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    if body.is_empty() {
        return None;
    }
    Some(match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    })
}

struct Args<'a> {
    argv: &'a [String],
    pos: usize,
}

impl<'a> Args<'a> {
    fn value(&mut self, name: &str, inline: Option<&'a str>) -> Result<String> {
        if let Some(v) = inline {
            return Ok(v.to_string());
        }
        self.pos += 1;
        self.argv
            .get(self.pos - 1)
            .cloned()
            .ok_or_else(|| Error::Usage(format!("option --{name} needs a value")))
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T> {
    v.parse()
        .map_err(|_| Error::Usage(format!("invalid value {v:?} for --{name}")))
}

fn is_true(inline: Option<&str>) -> bool {
    !matches!(inline, Some("false") | Some("0"))
}

pub fn parse(argv: &[String]) -> Result<(Global, Command)> {
    let mut global = Global {
        root: DEFAULT_ROOT.to_string(),
        log: None,
        log_format: LogFormat::Text,
        debug: false,
        systemd_cgroup: false,
    };
    let mut a = Args { argv, pos: 0 };
    // Global options, up to the command name.
    let command = loop {
        let Some(arg) = argv.get(a.pos) else {
            return Ok((global, Command::Help));
        };
        a.pos += 1;
        let Some((name, inline)) = option_name(arg) else {
            break arg.as_str();
        };
        match name {
            "root" => global.root = a.value(name, inline)?,
            "log" => global.log = Some(a.value(name, inline)?),
            "log-format" => {
                global.log_format = match a.value(name, inline)?.as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    other => return Err(Error::Usage(format!("invalid log format {other:?}"))),
                }
            }
            "debug" => global.debug = is_true(inline),
            "systemd-cgroup" => global.systemd_cgroup = is_true(inline),
            "rootless" | "criu" => {
                let _ = a.value(name, inline)?;
            }
            "version" | "v" => return Ok((global, Command::Version)),
            "help" | "h" => return Ok((global, Command::Help)),
            _ => return Err(Error::Usage(format!("unknown global option {arg:?}"))),
        }
    };
    let cmd = parse_command(command, &mut a)?;
    Ok((global, cmd))
}

/// Collects a command's options and positional arguments.
fn parse_command(command: &str, a: &mut Args<'_>) -> Result<Command> {
    let argv = a.argv;
    let mut create = CreateOpts::default();
    let mut exec = ExecOpts::default();
    let mut update = UpdateOpts::default();
    let (mut detach, mut force, mut all, mut json, mut quiet, mut rootless) =
        (false, false, false, false, false, false);
    let mut bundle_for_spec = String::from(".");
    let mut positional: Vec<String> = Vec::new();
    let mut only_positional = false;

    while let Some(arg) = argv.get(a.pos) {
        a.pos += 1;
        let opt = if only_positional || !positional.is_empty() && command == "exec" {
            None
        } else {
            option_name(arg)
        };
        let Some((name, inline)) = opt else {
            if arg == "--" && !only_positional {
                only_positional = true;
                continue;
            }
            positional.push(arg.clone());
            continue;
        };
        match (command, name) {
            (_, "help" | "h") => return Ok(Command::Help),
            ("create" | "run", "bundle" | "b") => create.bundle = a.value(name, inline)?,
            ("create" | "run" | "exec", "pid-file") => {
                let v = a.value(name, inline)?;
                create.pid_file = Some(v.clone());
                exec.pid_file = Some(v);
            }
            ("create" | "run" | "exec", "console-socket") => {
                let v = a.value(name, inline)?;
                create.console_socket = Some(v.clone());
                exec.console_socket = Some(v);
            }
            ("create" | "run", "no-pivot") => create.no_pivot = is_true(inline),
            ("create" | "run", "no-new-keyring") => create.no_new_keyring = is_true(inline),
            ("create" | "run" | "exec", "preserve-fds") => {
                let v = parse_num(name, &a.value(name, inline)?)?;
                create.preserve_fds = v;
                exec.preserve_fds = v;
            }
            ("run" | "exec", "detach" | "d") => detach = is_true(inline),
            ("run", "keep") => {}
            ("delete", "force" | "f") => force = is_true(inline),
            ("kill", "all" | "a") => all = is_true(inline),
            ("list" | "ps", "format" | "f") => json = a.value(name, inline)? == "json",
            ("list", "quiet" | "q") => quiet = is_true(inline),
            ("spec", "bundle" | "b") => bundle_for_spec = a.value(name, inline)?,
            ("spec", "rootless") => rootless = is_true(inline),
            ("exec", "process" | "p") => exec.process = Some(a.value(name, inline)?),
            ("exec", "tty" | "t") => exec.tty = is_true(inline),
            ("exec", "cwd") => exec.cwd = Some(a.value(name, inline)?),
            ("exec", "env" | "e") => exec.env.push(a.value(name, inline)?),
            ("exec", "user" | "u") => exec.user = Some(a.value(name, inline)?),
            ("exec", "additional-gids" | "g") => exec
                .additional_gids
                .push(parse_num(name, &a.value(name, inline)?)?),
            ("exec", "cap" | "c") => exec.cap.push(a.value(name, inline)?),
            ("exec", "no-new-privs") => exec.no_new_privs = is_true(inline),
            ("exec", "process-label" | "apparmor" | "cgroup") => {
                let _ = a.value(name, inline)?;
            }
            ("update", "resources" | "r") => update.resources = Some(a.value(name, inline)?),
            ("update", "memory") => update.memory = Some(parse_bytes(&a.value(name, inline)?)?),
            ("update", "memory-swap") => {
                update.memory_swap = Some(parse_bytes(&a.value(name, inline)?)?)
            }
            ("update", "memory-reservation") => {
                update.memory_reservation = Some(parse_bytes(&a.value(name, inline)?)?)
            }
            ("update", "cpu-shares") => {
                update.cpu_shares = Some(parse_num(name, &a.value(name, inline)?)?)
            }
            ("update", "cpu-quota") => {
                update.cpu_quota = Some(parse_num(name, &a.value(name, inline)?)?)
            }
            ("update", "cpu-period") => {
                update.cpu_period = Some(parse_num(name, &a.value(name, inline)?)?)
            }
            ("update", "cpuset-cpus") => update.cpuset_cpus = Some(a.value(name, inline)?),
            ("update", "cpuset-mems") => update.cpuset_mems = Some(a.value(name, inline)?),
            ("update", "pids-limit") => {
                update.pids_limit = Some(parse_num(name, &a.value(name, inline)?)?)
            }
            ("update", "blkio-weight") => {
                update.blkio_weight = Some(parse_num(name, &a.value(name, inline)?)?)
            }
            _ => return Err(Error::Usage(format!("{command}: unknown option {arg:?}"))),
        }
    }

    let id = |positional: &[String]| -> Result<String> {
        let id = positional
            .first()
            .cloned()
            .ok_or_else(|| Error::Usage(format!("{command}: container id required")))?;
        validate_id(&id)?;
        Ok(id)
    };
    Ok(match command {
        "create" | "run" => {
            create.id = id(&positional)?;
            if create.bundle.is_empty() {
                create.bundle = ".".into();
            }
            if command == "create" {
                Command::Create(create)
            } else {
                Command::Run { create, detach }
            }
        }
        "start" => Command::Start {
            id: id(&positional)?,
        },
        "state" => Command::State {
            id: id(&positional)?,
        },
        "kill" => Command::Kill {
            id: id(&positional)?,
            signal: positional
                .get(1)
                .cloned()
                .unwrap_or_else(|| "SIGTERM".into()),
            all,
        },
        "delete" => Command::Delete {
            id: id(&positional)?,
            force,
        },
        "exec" => {
            exec.id = id(&positional)?;
            exec.args = positional[1..].to_vec();
            exec.detach = detach;
            if exec.process.is_none() && exec.args.is_empty() {
                return Err(Error::Usage(
                    "exec: give --process FILE or a command".into(),
                ));
            }
            Command::Exec(exec)
        }
        "list" => Command::List { json, quiet },
        "ps" => Command::Ps {
            id: id(&positional)?,
            json,
            ps_args: positional[1..].to_vec(),
        },
        "pause" => Command::Pause {
            id: id(&positional)?,
        },
        "resume" => Command::Resume {
            id: id(&positional)?,
        },
        "update" => {
            update.id = id(&positional)?;
            Command::Update(update)
        }
        "features" => Command::Features,
        "spec" => Command::Spec {
            bundle: bundle_for_spec,
            rootless,
        },
        "version" => Command::Version,
        "help" => Command::Help,
        other => return Err(Error::Usage(format!("unknown command {other:?}"))),
    })
}

/// Container ids name directories: no slashes, no dot names, printable.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.:@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!("invalid container id {id:?}")))
    }
}

/// "512m", "1g", "1024" -> bytes; "-1" stays -1 (unlimited).
pub fn parse_bytes(v: &str) -> Result<i64> {
    let v = v.trim();
    if v == "-1" {
        return Ok(-1);
    }
    let (num, mult) = match v.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let mult: i64 = match v[i..].to_ascii_lowercase().trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return Err(Error::Usage(format!("invalid size {v:?}"))),
            };
            (&v[..i], mult)
        }
        None => (v, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| Error::Usage(format!("invalid size {v:?}")))?;
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn containerd_style_create() {
        let (g, cmd) = parse(&argv(
            "--root /run/containerd/runc/default --log /x/log.json --log-format json create --bundle /b --pid-file /b/init.pid --console-socket /tmp/c.sock abc",
        ))
        .unwrap();
        assert_eq!(g.root, "/run/containerd/runc/default");
        assert_eq!(g.log_format, LogFormat::Json);
        let Command::Create(c) = cmd else { panic!() };
        assert_eq!((c.id.as_str(), c.bundle.as_str()), ("abc", "/b"));
        assert_eq!(c.pid_file.as_deref(), Some("/b/init.pid"));
        assert_eq!(c.console_socket.as_deref(), Some("/tmp/c.sock"));
    }

    #[test]
    fn equals_forms_and_single_dash() {
        let (g, cmd) = parse(&argv("--log-format=json -root=/r run -d -bundle=/b x")).unwrap();
        assert_eq!(g.root, "/r");
        let Command::Run { create, detach } = cmd else {
            panic!()
        };
        assert!(detach);
        assert_eq!(create.bundle, "/b");
    }

    #[test]
    fn exec_args_after_id_are_not_options() {
        let (_, cmd) = parse(&argv("exec -t --env A=1 c1 sh -c ls")).unwrap();
        let Command::Exec(e) = cmd else { panic!() };
        assert_eq!(e.args, vec!["sh", "-c", "ls"]);
        assert_eq!(e.env, vec!["A=1"]);
        assert!(e.tty);
    }

    #[test]
    fn kill_defaults_and_errors() {
        let (_, cmd) = parse(&argv("kill --all c1 KILL")).unwrap();
        let Command::Kill { signal, all, .. } = cmd else {
            panic!()
        };
        assert_eq!(signal, "KILL");
        assert!(all);
        assert!(parse(&argv("start")).is_err());
        assert!(parse(&argv("start ../x")).is_err());
        assert!(parse(&argv("frobnicate x")).is_err());
        assert!(parse(&argv("create --nope x")).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("12q").is_err());
    }
}
