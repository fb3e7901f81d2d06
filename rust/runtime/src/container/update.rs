//! `update`: change a running container's resources, from `--resources FILE|-`
//! (a linux.resources JSON object) and/or runc's individual flags.

use std::io::Read;

use crate::cli::{Global, UpdateOpts};
use crate::error::{Context, Error, Result};
use crate::spec::{BlockIo, Cpu, Memory, Pids, Resources};
use crate::state::{Container, Status};

pub fn update(g: &Global, o: &UpdateOpts) -> Result<()> {
    let c = Container::load(&g.root, &o.id)?;
    if c.status() == Status::Stopped {
        return Err(Error::State("cannot update a stopped container".into()));
    }
    let mut r: Resources = match o.resources.as_deref() {
        Some(path) => {
            let mut raw = Vec::new();
            if path == "-" {
                std::io::stdin()
                    .read_to_end(&mut raw)
                    .ctx(|| "read resources from stdin".into())?;
            } else {
                raw = std::fs::read(path).ctx(|| format!("read {path}"))?;
            }
            serde_json::from_slice(&raw).map_err(|e| Error::Config(format!("resources: {e}")))?
        }
        None => Resources::default(),
    };
    if o.memory.is_some() || o.memory_swap.is_some() || o.memory_reservation.is_some() {
        let m = r.memory.get_or_insert_with(Memory::default);
        m.limit = o.memory.or(m.limit);
        m.swap = o.memory_swap.or(m.swap);
        m.reservation = o.memory_reservation.or(m.reservation);
    }
    if o.cpu_shares.is_some()
        || o.cpu_quota.is_some()
        || o.cpu_period.is_some()
        || o.cpuset_cpus.is_some()
        || o.cpuset_mems.is_some()
    {
        let cpu = r.cpu.get_or_insert_with(Cpu::default);
        cpu.shares = o.cpu_shares.or(cpu.shares);
        cpu.quota = o.cpu_quota.or(cpu.quota);
        cpu.period = o.cpu_period.or(cpu.period);
        cpu.cpus = o.cpuset_cpus.clone().or(cpu.cpus.take());
        cpu.mems = o.cpuset_mems.clone().or(cpu.mems.take());
    }
    if let Some(limit) = o.pids_limit {
        r.pids = Some(Pids { limit });
    }
    if let Some(w) = o.blkio_weight {
        r.block_io.get_or_insert_with(BlockIo::default).weight = Some(w);
    }
    c.cgroup()?.apply(&r)
}
