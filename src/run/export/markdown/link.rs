//! The link section (split's remoting link).

use super::*;

/// The remoting link alone (C8).
pub(super) fn link(out: &mut String, rows: &[SummaryRow]) {
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "link").collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Remoting link (ractor_cluster, one connection)\n");
    let _ = writeln!(
        out,
        "A sink process pinned to the server CPUs and a sender on the generator's CPUs, one session, \
         median (min-max) over the repeats.\n"
    );
    for r in rows {
        let _ = writeln!(out, "- {}: {} ({} repeats)", r.model, r.detail, r.repeats);
    }
    out.push('\n');
}
