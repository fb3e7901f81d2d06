//! The runtime's log: `--log FILE` (else stderr) in `--log-format text|json`.
//! Callers (containerd, podman) show the last error line's `msg` to the user.

use std::io::Write;
use std::sync::OnceLock;

use crate::cli::{Global, LogFormat};
use crate::sys;

struct Config {
    file: Option<String>,
    json: bool,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

pub fn init(g: &Global) {
    let _ = CONFIG.set(Config {
        file: g.log.clone(),
        json: g.log_format == LogFormat::Json,
        debug: g.debug,
    });
}

fn escape(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn write(level: &str, msg: &str) {
    write_kind(level, msg, None)
}

fn write_kind(level: &str, msg: &str, kind: Option<&str>) {
    let Some(cfg) = CONFIG.get() else {
        eprintln!("skiff-runtime: {msg}");
        return;
    };
    if level == "debug" && !cfg.debug {
        return;
    }
    let time = sys::rfc3339_now();
    let line = if cfg.json {
        let kind = kind
            .map(|k| format!(",\"kind\":\"{k}\""))
            .unwrap_or_default();
        format!(
            "{{\"level\":\"{level}\",\"msg\":{}{kind},\"time\":\"{time}\"}}\n",
            escape(msg)
        )
    } else {
        format!("time=\"{time}\" level={level} msg={}\n", escape(msg))
    };
    match &cfg.file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path);
            if let Ok(mut f) = f {
                let _ = f.write_all(line.as_bytes());
            }
            if level == "error" {
                eprintln!("skiff-runtime: {msg}");
            }
        }
        None => {
            if cfg.json {
                let _ = std::io::stderr().write_all(line.as_bytes());
            } else {
                eprintln!("skiff-runtime: {msg}");
            }
        }
    }
}

pub fn error(err: &crate::Error) {
    write_kind("error", &err.to_string(), Some(err.kind_name()));
}

pub fn warn(msg: &str) {
    write("warning", msg);
}

pub fn debug(msg: &str) {
    write("debug", msg);
}
