use crate::SOURCES;
use std::path::{Path, PathBuf};

/// The path a pulled model has in the cache.
pub fn model_file(models_dir: &Path, name: &str) -> PathBuf {
    models_dir.join(format!("{name}.gguf"))
}

/// A model file found in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// Whether it is one of the known sources, with the expected size.
    pub known: bool,
}

/// Every `*.gguf` and known embedding-model directory in the cache, sorted by name.
pub fn cached_models(models_dir: &Path) -> std::io::Result<Vec<CachedModel>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(models_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            // An embedding model: a directory named after its source.
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(source) = SOURCES.iter().find(|s| s.name == name) {
                let size = source
                    .files
                    .iter()
                    .map(|f| source.file_path(models_dir, f))
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum();
                out.push(CachedModel {
                    name,
                    path,
                    size,
                    known: size == source.size(),
                });
            }
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let size = entry.metadata()?.len();
        let known = SOURCES.iter().any(|s| s.name == name && s.size() == size);
        out.push(CachedModel {
            name,
            path,
            size,
            known,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
