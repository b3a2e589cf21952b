//! Reading an OCI layout back: every document and blob checked against its descriptor, and
//! the layer unpacked.

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{ensure, Context as _, Result};
use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType, OciLayout, Os,
};

use super::layout::{ref_name, sha256_hex};
use super::BIN_PATH;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{sample_layout, sample_meta, write_layout, TempDir};
    use std::path::PathBuf;

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
        let out = sample_layout(&tmp);
        let v = validate(&out, "1.2.3").unwrap();
        let again = tmp.0.join("again");
        let bin = tmp.0.join("bin");
        let w = write_layout(&bin, &again, "1.2.3", &sample_meta()).unwrap();
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
            let out = sample_layout(&tmp);
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
        let out = sample_layout(&tmp);
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
}
