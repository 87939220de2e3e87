//! Tasks in flight across a recycle (issue 19): `hostlab run`'s state
//! scenario posts long `Prefer: respond-async` tasks across proxy's
//! overlapped and stop-start recycles, with and without `--journal`, and
//! counts them finished, lost and run twice. Assertions are on the counts'
//! behaviour (a journal keeps every task and runs each once; without one the
//! tasks the old process took are unknown to the new one), never on timing.

mod common;

use common::run_hostlab;
use serde_json::Value;

#[test]
fn tasks_in_flight_are_counted_with_and_without_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let out = run_hostlab(&[
        "run",
        "--quick",
        "--models",
        "proxy",
        "--scenarios",
        "state",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "hostlab run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap()).unwrap();
    let entries = json["entries"].as_array().unwrap();
    let inflight: Vec<&Value> = entries.iter().filter(|e| e["inflight"].is_object()).collect();
    let mut seen: Vec<(String, bool)> = inflight
        .iter()
        .map(|e| {
            (
                e["inflight"]["kind"].as_str().unwrap().to_string(),
                e["inflight"]["journal"].as_bool().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("overlapped".to_string(), false),
            ("overlapped".to_string(), true),
            ("stop-start".to_string(), false),
            ("stop-start".to_string(), true)
        ],
        "{inflight:?}"
    );
    for e in inflight {
        assert_eq!(e["scenario"], "state", "{e}");
        let f = &e["inflight"];
        let n = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("no {k}: {e}"));
        assert_eq!(n("rows_per_task"), 5_000, "{e}");
        assert!(
            n("accepted_at_recycle") > 0,
            "tasks were accepted before the recycle: {e}"
        );
        assert!(n("accepted_at_recycle") <= n("tasks_accepted"), "{e}");
        assert!(n("tasks_accepted") <= n("tasks_sent"), "{e}");
        assert!(n("in_flight_at_recycle") <= n("accepted_at_recycle"), "{e}");
        assert_eq!(n("tasks_finished") + n("tasks_lost"), n("tasks_accepted"), "{e}");
        assert!(n("lost_unknown") <= n("tasks_lost"), "{e}");
        if f["journal"] == true {
            assert_eq!(n("tasks_lost"), 0, "a journal keeps every accepted task: {e}");
            assert_eq!(f["tasks_run_twice"], 0, "a journal runs each task once: {e}");
            assert!(f["tasks_resumed"].is_u64(), "{e}");
        } else {
            // The old app process took its records and its count with it.
            assert!(f["tasks_run_twice"].is_null(), "{e}");
            assert!(
                n("lost_unknown") >= n("accepted_at_recycle"),
                "every task the old process accepted is unknown to the new one: {e}"
            );
        }
    }
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("## Tasks in flight across a recycle"), "{report}");
}
