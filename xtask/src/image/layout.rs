//! Writing the OCI image layout: the layer, the config, the manifest and the index, each
//! reproducible byte for byte.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;

use anyhow::{bail, ensure, Context as _, Result};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, ImageConfigurationBuilder, ImageIndex,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, OciLayout, OciLayoutBuilder, Os,
    PlatformBuilder, RootFsBuilder, ANNOTATION_DESCRIPTION, ANNOTATION_LICENSES,
    ANNOTATION_REF_NAME, ANNOTATION_REVISION, ANNOTATION_TITLE, ANNOTATION_VERSION,
};
use sha2::{Digest as _, Sha256};

use super::{BIN_PATH, VERSION};
use crate::cmd;

/// The image's default arguments: what the DaemonSet runs.
const DEFAULT_CMD: &[&str] = &["run", "--metrics-addr", "0.0.0.0:9464"];
const DESCRIPTION: &str =
    "Traces the kernel's page-table syncs with eBPF (Prometheus metrics on :9464)";
const LICENSES: &str = "MIT OR Apache-2.0";

/// What the image records about its source.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Seconds since the epoch: every tar entry's mtime and the config's `created`.
    pub epoch: u64,
    /// The commit, for the `org.opencontainers.image.revision` label.
    pub revision: Option<String>,
}

impl Meta {
    /// `SOURCE_DATE_EPOCH` if set, else the HEAD commit's time (0 outside git).
    pub fn from_git(root: &Path) -> Meta {
        let git = |args: &[&str]| {
            cmd::output(Command::new("git").current_dir(root).args(args))
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let epoch = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .or_else(|| git(&["log", "-1", "--format=%ct"]))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Meta {
            epoch,
            revision: git(&["rev-parse", "HEAD"]),
        }
    }
}

/// The image written by [`write_layout`].
#[derive(Debug)]
pub struct Written {
    pub manifest_digest: String,
    /// Config, layer and manifest blobs, in bytes.
    pub total_size: u64,
    pub layer_size: u64,
}

/// The layer: `usr/`, `usr/bin/`, `usr/bin/sync-trace`, root-owned, mtime `epoch`, ustar.
pub fn layer_tar(bin: &[u8], epoch: u64) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let rel = BIN_PATH.trim_start_matches('/');
    let mut dirs: Vec<&str> = Path::new(rel)
        .ancestors()
        .skip(1)
        .filter_map(|p| p.to_str())
        .filter(|p| !p.is_empty())
        .collect();
    dirs.reverse();
    for d in dirs {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_path(format!("{d}/"))?;
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(epoch);
        h.set_size(0);
        h.set_cksum();
        tar.append(&h, std::io::empty())?;
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path(rel)?;
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(epoch);
    h.set_size(bin.len() as u64);
    h.set_cksum();
    tar.append(&h, bin)?;
    Ok(tar.into_inner()?)
}

pub(super) fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_digest(data: &[u8]) -> Result<Digest> {
    Ok(Digest::from_str(&format!("sha256:{}", sha256_hex(data)))?)
}

/// JSON with every object's keys sorted: oci-spec keeps labels and annotations in HashMaps,
/// whose order changes from run to run.
fn canonical_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    fn sort(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut entries: Vec<_> = m.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(sort).collect())
            }
            v => v,
        }
    }
    Ok(serde_json::to_vec(&sort(serde_json::to_value(v)?))?)
}

/// Writes `data` to `blobs/sha256/<digest>` under `out` and returns its descriptor.
fn put_blob(out: &Path, media_type: MediaType, data: &[u8]) -> Result<Descriptor> {
    let hex = sha256_hex(data);
    let dir = out.join("blobs/sha256");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::write(dir.join(&hex), data).with_context(|| format!("cannot write blob {hex}"))?;
    Ok(Descriptor::new(
        media_type,
        data.len() as u64,
        Digest::from_str(&format!("sha256:{hex}"))?,
    ))
}

/// Writes the image for `bin` into the OCI layout `out` under `tag`. An existing layout keeps
/// its other tags; anything else already at `out` is refused.
pub fn write_layout(bin: &Path, out: &Path, tag: &str, meta: &Meta) -> Result<Written> {
    ensure!(
        !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        "bad tag {tag:?}: up to 128 of [A-Za-z0-9._-], not starting with . or -"
    );
    let old_index = if out.join("oci-layout").is_file() {
        Some(ImageIndex::from_file(out.join("index.json")).context("existing index.json")?)
    } else {
        if out.exists() && fs::read_dir(out)?.next().is_some() {
            bail!("{} exists and is not an OCI layout", out.display());
        }
        None
    };
    let bin_data = fs::read(bin).with_context(|| format!("cannot read {}", bin.display()))?;
    let tar = layer_tar(&bin_data, meta.epoch)?;
    // Fixed gzip header: mtime 0, no file name; the OS byte is flate2's constant.
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar)?;
    let gz = gz.finish()?;

    let layer = put_blob(out, MediaType::ImageLayerGzip, &gz)?;
    let mut labels = HashMap::from([
        (ANNOTATION_TITLE.to_string(), "sync-trace".to_string()),
        (ANNOTATION_DESCRIPTION.to_string(), DESCRIPTION.to_string()),
        (ANNOTATION_VERSION.to_string(), VERSION.to_string()),
        (ANNOTATION_LICENSES.to_string(), LICENSES.to_string()),
    ]);
    if let Some(rev) = &meta.revision {
        labels.insert(ANNOTATION_REVISION.to_string(), rev.clone());
    }
    let config = ImageConfigurationBuilder::default()
        .created(rfc3339(meta.epoch))
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(
            ConfigBuilder::default()
                .entrypoint(vec![BIN_PATH.to_string()])
                .cmd(
                    DEFAULT_CMD
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                )
                .env(vec!["RUST_LOG=info".to_string()])
                .exposed_ports(vec!["9464/tcp".to_string()])
                .labels(labels)
                .build()?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![sha256_digest(&tar)?.to_string()])
                .build()?,
        )
        .build()?;
    let config = put_blob(out, MediaType::ImageConfig, &canonical_json(&config)?)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config.clone())
        .layers(vec![layer.clone()])
        .build()?;
    let manifest_json = canonical_json(&manifest)?;
    let mut manifest_desc = put_blob(out, MediaType::ImageManifest, &manifest_json)?;
    manifest_desc.set_platform(Some(
        PlatformBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .build()?,
    ));
    manifest_desc.set_annotations(Some(HashMap::from([(
        ANNOTATION_REF_NAME.to_string(),
        tag.to_string(),
    )])));
    let manifest_digest = manifest_desc.digest().to_string();

    let mut manifests: Vec<Descriptor> = old_index
        .map(|i| i.manifests().clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|d| ref_name(d) != Some(tag))
        .collect();
    manifests.push(manifest_desc);
    manifests.sort_by(|a, b| ref_name(a).cmp(&ref_name(b)));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()?;
    let layout: OciLayout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()?;
    fs::write(out.join("oci-layout"), canonical_json(&layout)?)?;
    fs::write(out.join("index.json"), canonical_json(&index)?)?;
    Ok(Written {
        manifest_digest,
        total_size: config.size() + layer.size() + manifest_json.len() as u64,
        layer_size: layer.size(),
    })
}

pub(super) fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()?
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}

/// `secs` since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
fn rfc3339(secs: u64) -> String {
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{sample_layout, validate, TempDir};

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn layer_entries_are_fixed() {
        let a = layer_tar(b"x", 5).unwrap();
        assert_eq!(a, layer_tar(b"x", 5).unwrap());
        let mut ar = tar::Archive::new(&a[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["usr/", "usr/bin/", "usr/bin/sync-trace"]);
    }

    #[test]
    fn an_existing_layout_keeps_its_other_tags() {
        let tmp = TempDir::new("image-test").unwrap();
        let out = sample_layout(&tmp);
        let meta = Meta {
            epoch: 0,
            revision: None,
        };
        write_layout(&tmp.0.join("bin"), &out, "latest", &meta).unwrap();
        validate(&out, "1.2.3").unwrap();
        validate(&out, "latest").unwrap();
        let not_layout = tmp.0.join("bin-dir");
        fs::create_dir(&not_layout).unwrap();
        fs::write(not_layout.join("x"), b"").unwrap();
        assert!(write_layout(&tmp.0.join("bin"), &not_layout, "t", &meta).is_err());
    }
}
