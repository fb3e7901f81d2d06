//! skiff-runtime: Skiff's OCI runtime, with runc's command line.

use std::process::ExitCode;

use skiff_runtime::cli::{self, Command};
use skiff_runtime::container::{
    create, delete, exec, features, kill, list, pause, ps, run, spec_cmd, start, update,
};
use skiff_runtime::error::Result;
use skiff_runtime::spec::OCI_VERSION;
use skiff_runtime::{log, state};

const VERSION: &str = env!("CARGO_PKG_VERSION");

const USAGE: &str = "usage: skiff-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND [OPTIONS] ID

commands: create, start, run, state, kill, delete, exec, list, ps, pause, resume, update, features, spec";

fn dispatch(g: &cli::Global, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Version => {
            println!("skiff-runtime version {VERSION}");
            println!("spec: {OCI_VERSION}");
        }
        Command::Help => println!("{USAGE}"),
        Command::Create(o) => {
            create::create(g, &o, false)?;
        }
        Command::Run { create, detach } => return run::run(g, &create, detach),
        Command::Start { id } => start::start(g, &id)?,
        Command::State { id } => {
            let c = state::Container::load(&g.root, &id)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&c.state_json()).unwrap_or_default()
            );
        }
        Command::Kill { id, signal, all } => kill::kill(g, &id, &signal, all)?,
        Command::Delete { id, force } => delete::delete(g, &id, force)?,
        Command::Exec(o) => return exec::exec(g, &o),
        Command::List { json, quiet } => list::list(g, json, quiet)?,
        Command::Ps { id, json, ps_args } => ps::ps(g, &id, json, &ps_args)?,
        Command::Pause { id } => pause::pause(g, &id)?,
        Command::Resume { id } => pause::resume(g, &id)?,
        Command::Update(o) => update::update(g, &o)?,
        Command::Features => println!(
            "{}",
            serde_json::to_string_pretty(&features::features()).unwrap_or_default()
        ),
        Command::Spec { bundle, rootless } => spec_cmd::spec(&bundle, rootless)?,
    }
    Ok(0)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (global, cmd) = match cli::parse(&argv) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("skiff-runtime: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    log::init(&global);
    match dispatch(&global, cmd) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            log::error(&e);
            ExitCode::from(1)
        }
    }
}
