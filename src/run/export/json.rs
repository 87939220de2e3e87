//! results.json: written whole after every scenario (to a temporary file,
//! then renamed, so a crash never leaves half a document) and read back by
//! `report` and `compare`.

use std::path::Path;

use anyhow::{Context, bail};

use crate::run::results::{Results, SCHEMA_VERSION};

pub(crate) fn write(dir: &Path, results: &Results) -> anyhow::Result<()> {
    let path = dir.join("results.json");
    let tmp = dir.join("results.json.tmp");
    let text = serde_json::to_string_pretty(results)?;
    std::fs::write(&tmp, text + "\n").with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

pub(crate) fn read(dir: &Path) -> anyhow::Result<Results> {
    let path = dir.join("results.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}; is {} the folder of a `hostlab run`?",
            path.display(),
            dir.display()
        )
    })?;
    let results: Results =
        serde_json::from_str(&text).with_context(|| format!("{} is not a hostlab results document", path.display()))?;
    if results.schema_version != SCHEMA_VERSION {
        bail!(
            "{} has schema version {}, this hostlab reads version {SCHEMA_VERSION}",
            path.display(),
            results.schema_version
        );
    }
    Ok(results)
}
