//! `list`: a table like runc's, or JSON.

use crate::cli::Global;
use crate::error::Result;
use crate::state;

pub fn list(g: &Global, json: bool, quiet: bool) -> Result<()> {
    let all = state::list(&g.root);
    if json {
        let v: Vec<serde_json::Value> = all.iter().map(|c| c.state_json()).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    if quiet {
        for c in &all {
            println!("{}", c.saved.id);
        }
        return Ok(());
    }
    let rows: Vec<[String; 6]> = all
        .iter()
        .map(|c| {
            let st = c.oci_state();
            [
                c.saved.id.clone(),
                st.pid.to_string(),
                st.status,
                c.saved.bundle.clone(),
                c.saved.created.clone(),
                c.saved.owner.clone(),
            ]
        })
        .collect();
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}
