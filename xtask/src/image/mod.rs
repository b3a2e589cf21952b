//! `cargo xtask image`: the container image for the DaemonSet, written as an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) without a container daemon, buildah or root.
//!
//! The image holds one gzip'd layer with the static `sync-trace` binary at [`BIN_PATH`] (and
//! its two parent directories), nothing else: no libc, no shell, no CA certificates.
//!
//! The JSON documents use `oci-spec`'s schema types. No crate writes the layout itself: the
//! few crates that build images carry registry clients and async runtimes, while the layout
//! is three small files beside content-addressed blobs, done here with `tar`, `flate2` and
//! `sha2`. Push it with `skopeo copy oci:DIR:TAG docker://…` (docs/deploy.md).
//!
//! Reproducible: the binary is built with `--remap-path-prefix` for the checkout and the cargo
//! home; tar entries are in a fixed order with uid/gid 0, fixed modes and an mtime of
//! `SOURCE_DATE_EPOCH` (else the HEAD commit's time); gzip's header has mtime 0; the JSON
//! has sorted keys. The same commit built from the same toolchain gives the same digest.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{bail, ensure, Context as _, Result};
use clap::Args;
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, ImageConfiguration, ImageConfigurationBuilder,
    ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType, OciLayout,
    OciLayoutBuilder, Os, PlatformBuilder, RootFsBuilder, ANNOTATION_DESCRIPTION,
    ANNOTATION_LICENSES, ANNOTATION_REF_NAME, ANNOTATION_REVISION, ANNOTATION_TITLE,
    ANNOTATION_VERSION,
};
use sha2::{Digest as _, Sha256};

use crate::guest_binary::{workspace_root, GUEST_TARGET};

/// Where the binary is in the image; the DaemonSet's `command` and the Dockerfile use it too.
pub const BIN_PATH: &str = "/usr/bin/sync-trace";
/// The workspace version, the default tag.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The image's default arguments: what the DaemonSet runs.
const DEFAULT_CMD: &[&str] = &["run", "--metrics-addr", "0.0.0.0:9464"];
const DESCRIPTION: &str =
    "Traces the kernel's page-table syncs with eBPF (Prometheus metrics on :9464)";
const LICENSES: &str = "MIT OR Apache-2.0";

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The OCI layout directory (created; an existing layout gets this tag added or replaced).
    /// Default: target/image/sync-trace.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The image tag (`org.opencontainers.image.ref.name`). Default: the workspace version.
    #[arg(long, default_value = VERSION)]
    pub tag: String,
}

pub fn run(args: ImageArgs) -> Result<i32> {
    let root = workspace_root();
    let out = args
        .out
        .unwrap_or_else(|| target_dir(&root).join("image/sync-trace"));
    let bin = build_static_binary(&root)?;
    let image = write_layout(&bin, &out, &args.tag, &Meta::from_git(&root))?;
    println!(
        "{}:{} manifest {} ({} bytes compressed)",
        out.display(),
        args.tag,
        image.manifest_digest,
        image.total_size
    );
    println!(
        "push: skopeo copy oci:{}:{} docker://ghcr.io/OWNER/sync-trace:{}",
        out.display(),
        args.tag,
        args.tag
    );
    Ok(0)
}

/// The cargo target directory (`CARGO_TARGET_DIR`, relative to the workspace, or `target`).
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => d,
        Some(d) => root.join(d),
        None => root.join("target"),
    }
}

/// Builds `sync-trace` (release) as a static glibc binary in its own target directory,
/// `target/image-build`: its RUSTFLAGS differ from every other build's, so sharing a directory
/// would rebuild one or the other each time. Returns the binary, checked to be static.
pub fn build_static_binary(root: &Path) -> Result<PathBuf> {
    let dir = target_dir(root).join("image-build");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    // No musl target is installed: `+crt-static` links glibc statically. The remaps keep the
    // checkout and cargo-home paths out of the binary (panic locations), for reproducibility.
    let mut flags = vec![
        "-C".to_string(),
        "target-feature=+crt-static".to_string(),
        format!("--remap-path-prefix={}=/sync-trace", root.display()),
    ];
    if let Some(home) = cargo_home {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "sync-trace",
            "--target",
            GUEST_TARGET,
        ])
        .env("CARGO_TARGET_DIR", &dir)
        // An explicit --target keeps these flags away from build scripts and proc macros.
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env_remove("RUSTFLAGS")
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building the static sync-trace failed ({status})");
    }
    let bin = dir.join(GUEST_TARGET).join("release/sync-trace");
    let elf = fs::read(&bin)
        .with_context(|| format!("cargo succeeded but {} is missing", bin.display()))?;
    ensure!(
        is_static_elf(&elf)?,
        "{} has an ELF interpreter: it is not statically linked",
        bin.display()
    );
    Ok(bin)
}

/// True if `elf` (ELF64 little-endian) has no PT_INTERP program header, i.e. needs no dynamic
/// loader and no shared library at run time.
pub fn is_static_elf(elf: &[u8]) -> Result<bool> {
    ensure!(
        elf.len() >= 64 && elf[..4] == *b"\x7fELF" && elf[4] == 2 && elf[5] == 1,
        "not an ELF64 little-endian file"
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into()?) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let p_type = elf
            .get(o..o + 4)
            .context("program header outside the file")?;
        if u32::from_le_bytes(p_type.try_into()?) == 3 {
            return Ok(false); // PT_INTERP
        }
    }
    Ok(true)
}

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
            Command::new("git")
                .current_dir(root)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
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

fn sha256_hex(data: &[u8]) -> String {
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

fn ref_name(d: &Descriptor) -> Option<&str> {
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

/// What [`validate`] found in a layout.
#[derive(Debug)]
pub struct Validated {
    pub manifest_digest: String,
    pub config: ImageConfiguration,
    /// The layer, decompressed.
    pub layer_tar: Vec<u8>,
}

/// Reads blob `d` from the layout and checks its size and sha256 against the descriptor.
fn read_blob(layout: &Path, d: &Descriptor) -> Result<Vec<u8>> {
    let hex = d
        .as_digest_sha256()
        .with_context(|| format!("{}: not a sha256 digest", d.digest()))?;
    let path = layout.join("blobs/sha256").join(hex);
    let data = fs::read(&path).with_context(|| format!("missing blob {}", path.display()))?;
    ensure!(
        data.len() as u64 == d.size(),
        "blob {hex}: {} bytes, descriptor says {}",
        data.len(),
        d.size()
    );
    let actual = sha256_hex(&data);
    ensure!(
        actual == hex,
        "blob {hex}: content hashes to sha256:{actual}"
    );
    Ok(data)
}

/// Checks the layout at `layout` holds a well-formed image tagged `tag`: `oci-layout` version,
/// index and manifest media types, every blob's size and digest, one gzip'd layer whose
/// uncompressed digest is the config's diff_id, and a linux/amd64 config with an entrypoint.
pub fn validate(layout: &Path, tag: &str) -> Result<Validated> {
    let oci_layout = OciLayout::from_file(layout.join("oci-layout")).context("oci-layout")?;
    ensure!(
        oci_layout.image_layout_version() == "1.0.0",
        "imageLayoutVersion {}",
        oci_layout.image_layout_version()
    );
    let index = ImageIndex::from_file(layout.join("index.json")).context("index.json")?;
    ensure!(
        index.schema_version() == 2,
        "index schemaVersion {}",
        index.schema_version()
    );
    ensure!(
        index.media_type() == &Some(MediaType::ImageIndex),
        "index mediaType {:?}",
        index.media_type()
    );
    let found: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| ref_name(d) == Some(tag))
        .collect();
    ensure!(found.len() == 1, "{} manifests tagged {tag}", found.len());
    let md = found[0];
    ensure!(
        md.media_type() == &MediaType::ImageManifest,
        "manifest descriptor mediaType {}",
        md.media_type()
    );
    let manifest = ImageManifest::from_reader(&read_blob(layout, md)?[..]).context("manifest")?;
    ensure!(manifest.schema_version() == 2, "manifest schemaVersion");
    ensure!(
        manifest.media_type() == &Some(MediaType::ImageManifest),
        "manifest mediaType {:?}",
        manifest.media_type()
    );
    ensure!(
        manifest.config().media_type() == &MediaType::ImageConfig,
        "config mediaType {}",
        manifest.config().media_type()
    );
    let config = ImageConfiguration::from_reader(&read_blob(layout, manifest.config())?[..])
        .context("config")?;
    ensure!(
        manifest.layers().len() == 1,
        "{} layers, expected 1",
        manifest.layers().len()
    );
    let ld = &manifest.layers()[0];
    ensure!(
        ld.media_type() == &MediaType::ImageLayerGzip,
        "layer mediaType {}",
        ld.media_type()
    );
    let gz = read_blob(layout, ld)?;
    let mut layer_tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut layer_tar)
        .context("layer is not gzip")?;
    let diff_id = format!("sha256:{}", sha256_hex(&layer_tar));
    ensure!(
        config.rootfs().diff_ids() == &vec![diff_id.clone()],
        "config diff_ids {:?}, layer is {diff_id}",
        config.rootfs().diff_ids()
    );
    ensure!(
        config.os() == &Os::Linux && config.architecture() == &Arch::Amd64,
        "not linux/amd64"
    );
    let entrypoint = config
        .config()
        .as_ref()
        .and_then(|c| c.entrypoint().clone())
        .unwrap_or_default();
    ensure!(
        entrypoint == [BIN_PATH],
        "entrypoint {entrypoint:?}, expected [{BIN_PATH}]"
    );
    Ok(Validated {
        manifest_digest: md.digest().to_string(),
        config,
        layer_tar,
    })
}

/// Unpacks `layer_tar` into `dest`, refusing anything but the expected directories and binary.
pub fn unpack_layer(layer_tar: &[u8], dest: &Path) -> Result<()> {
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(layer_tar);
    for e in ar.entries()? {
        let mut e = e?;
        let path = e.path()?.to_string_lossy().into_owned();
        ensure!(
            e.header().uid()? == 0 && e.header().gid()? == 0,
            "{path} is not root's"
        );
        names.push(path);
        ensure!(
            e.unpack_in(dest)?,
            "{} escapes the root",
            names.last().unwrap()
        );
    }
    let expected = ["usr/", "usr/bin/", BIN_PATH.trim_start_matches('/')];
    ensure!(
        names == expected,
        "layer holds {names:?}, expected {expected:?}"
    );
    Ok(())
}

/// Host check `host/image`: builds the image twice into fresh layouts (same digest), validates
/// the layout, unpacks the layer, checks the binary is static and that its `--version` is the
/// workspace version, and that the DaemonSet and the Dockerfile name this tag and binary.
pub fn check() -> Result<()> {
    let root = workspace_root();
    let bin = build_static_binary(&root)?;
    let meta = Meta::from_git(&root);
    // Under target/, not /tmp: the unpacked binary must be executable (/tmp may be noexec).
    let tmp = TempDir::new_in(&target_dir(&root), "image-check")?;
    let (a, b) = (tmp.0.join("a"), tmp.0.join("b"));
    let wa = write_layout(&bin, &a, VERSION, &meta)?;
    let wb = write_layout(&bin, &b, VERSION, &meta)?;
    ensure!(
        wa.manifest_digest == wb.manifest_digest,
        "two builds gave {} and {}",
        wa.manifest_digest,
        wb.manifest_digest
    );
    let v = validate(&a, VERSION)?;
    ensure!(
        v.manifest_digest == wa.manifest_digest,
        "index names another manifest"
    );
    let rootfs = tmp.0.join("rootfs");
    fs::create_dir(&rootfs)?;
    unpack_layer(&v.layer_tar, &rootfs)?;
    let unpacked = rootfs.join(BIN_PATH.trim_start_matches('/'));
    ensure!(
        is_static_elf(&fs::read(&unpacked)?)?,
        "{BIN_PATH} in the image is not static"
    );
    let out = Command::new(&unpacked)
        .arg("--version")
        .env_clear()
        .output()
        .with_context(|| format!("cannot run {}", unpacked.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.trim() == format!("sync-trace {VERSION}"),
        "`{BIN_PATH} --version` printed {stdout:?} ({}), expected \"sync-trace {VERSION}\"",
        out.status
    );
    deploy_files_agree(&root)?;
    println!(
        "image: {} bytes compressed (layer {}), manifest {}",
        wa.total_size, wa.layer_size, wa.manifest_digest
    );
    Ok(())
}

/// The DaemonSet and the Dockerfile agree with this image: the DaemonSet's `image:` ends in
/// `/sync-trace:<workspace version>` and its `command:` is the image's binary; the Dockerfile's
/// ENTRYPOINT is that binary and its VERSION the workspace version.
fn deploy_files_agree(root: &Path) -> Result<()> {
    let read = |rel: &str| {
        fs::read_to_string(root.join(rel)).with_context(|| format!("cannot read {rel}"))
    };
    let values = |text: &str, key: &str| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
            .collect::<Vec<_>>()
    };
    let ds = read("deploy/kubernetes/daemonset.yaml")?;
    let images = values(&ds, "image:");
    let want = format!("/sync-trace:{VERSION}");
    ensure!(
        images.len() == 1 && images[0].ends_with(&want),
        "daemonset.yaml: image {images:?}, expected one ending in {want}"
    );
    let want = format!("[\"{BIN_PATH}\"]");
    let commands = values(&ds, "command:");
    ensure!(
        commands == [want.clone()],
        "daemonset.yaml: command {commands:?}, expected {want}"
    );
    let df = read("Dockerfile")?;
    let entry = values(&df, "ENTRYPOINT");
    ensure!(
        entry == [want.clone()],
        "Dockerfile: ENTRYPOINT {entry:?}, expected {want}"
    );
    let version = values(&df, "ARG VERSION=");
    ensure!(
        version == [VERSION],
        "Dockerfile: ARG VERSION={version:?}, expected {VERSION}"
    );
    Ok(())
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    #[cfg(test)]
    fn new(what: &str) -> Result<TempDir> {
        TempDir::new_in(&std::env::temp_dir(), what)
    }

    fn new_in(base: &Path, what: &str) -> Result<TempDir> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = base.join(format!("sync-trace-{what}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layout around a stand-in binary (validation does not run it).
    fn layout(tmp: &TempDir) -> PathBuf {
        let bin = tmp.0.join("bin");
        fs::write(&bin, b"\x7fELF stand-in").unwrap();
        let out = tmp.0.join("layout");
        let meta = Meta {
            epoch: 1_700_000_000,
            revision: Some("0123".into()),
        };
        write_layout(&bin, &out, "1.2.3", &meta).unwrap();
        out
    }

    fn blob_paths(out: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = fs::read_dir(out.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn valid_layout_validates_and_is_reproducible() {
        let tmp = TempDir::new("image-test").unwrap();
        let out = layout(&tmp);
        let v = validate(&out, "1.2.3").unwrap();
        let again = tmp.0.join("again");
        let bin = tmp.0.join("bin");
        let meta = Meta {
            epoch: 1_700_000_000,
            revision: Some("0123".into()),
        };
        let w = write_layout(&bin, &again, "1.2.3", &meta).unwrap();
        assert_eq!(w.manifest_digest, v.manifest_digest);
        assert_eq!(
            fs::read(out.join("index.json")).unwrap(),
            fs::read(again.join("index.json")).unwrap()
        );
        assert!(validate(&out, "other").is_err());
        let rootfs = tmp.0.join("rootfs");
        fs::create_dir(&rootfs).unwrap();
        unpack_layer(&v.layer_tar, &rootfs).unwrap();
        assert_eq!(
            fs::read(rootfs.join("usr/bin/sync-trace")).unwrap(),
            b"\x7fELF stand-in"
        );
        assert_eq!(v.config.created().as_deref(), Some("2023-11-14T22:13:20Z"));
    }

    #[test]
    fn a_changed_byte_in_any_blob_fails() {
        for i in 0..3 {
            let tmp = TempDir::new("image-test").unwrap();
            let out = layout(&tmp);
            let blob = &blob_paths(&out)[i];
            let mut data = fs::read(blob).unwrap();
            let last = data.len() - 1;
            data[last] ^= 1;
            fs::write(blob, data).unwrap();
            let e = validate(&out, "1.2.3").unwrap_err();
            assert!(format!("{e:#}").contains("hashes to"), "{e:#}");
        }
    }

    #[test]
    fn a_wrong_size_or_media_type_in_the_index_fails() {
        let tmp = TempDir::new("image-test").unwrap();
        let out = layout(&tmp);
        let index = fs::read_to_string(out.join("index.json")).unwrap();
        let size = serde_json::from_str::<serde_json::Value>(&index).unwrap()["manifests"][0]
            ["size"]
            .as_u64()
            .unwrap();
        fs::write(
            out.join("index.json"),
            index.replace(
                &format!("\"size\":{size}"),
                &format!("\"size\":{}", size + 1),
            ),
        )
        .unwrap();
        assert!(format!("{:#}", validate(&out, "1.2.3").unwrap_err()).contains("descriptor says"));
        fs::write(
            out.join("index.json"),
            index.replace("image.manifest.v1+json", "image.config.v1+json"),
        )
        .unwrap();
        assert!(format!("{:#}", validate(&out, "1.2.3").unwrap_err()).contains("mediaType"));
    }

    #[test]
    fn dynamic_binaries_are_told_apart() {
        // This test binary is dynamically linked (no crt-static in `cargo test`).
        let me = fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(!is_static_elf(&me).unwrap());
        assert!(is_static_elf(b"not an elf").is_err());
    }

    /// The `host/image` check alone: `cargo test -p xtask --lib host_image -- --ignored`.
    #[test]
    #[ignore = "builds the release binary; `cargo xtask test` runs it as host/image"]
    fn host_image() {
        check().unwrap();
    }

    #[test]
    fn the_deploy_files_name_this_image() {
        deploy_files_agree(&workspace_root()).unwrap();
    }

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
        let out = layout(&tmp);
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
