//! `ps ID [--format json] [ps args]`: the container's processes.

use std::process::Command;

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::state::Container;

pub fn ps(g: &Global, id: &str, json: bool, ps_args: &[String]) -> Result<()> {
    let c = Container::load(&g.root, id)?;
    let pids = c.cgroup()?.pids()?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&pids).unwrap_or_else(|_| "[]".into())
        );
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::sys("run ps", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Ok(());
    };
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::Usage("ps output has no PID column".into()))?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}
