//! `vmsec libvirt-hook`: libvirt's QEMU hook (`/etc/libvirt/hooks/qemu.d/vmsec`). At a
//! domain's `prepare begin` it starts the vTPM of the vmsec VM whose GUID is the domain's UUID,
//! on the socket the domain's external TPM backend names, and hands the socket to the user
//! QEMU runs as; at `release end` it stops it. Domains that are not vmsec VMs, or have no
//! external TPM, are left alone.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::Ctx;
use crate::CliError;

/// A domain's XML from libvirt: small and shallow, but read through the hardened entry point
/// like everything vmsec parses.
const LIMITS: vmsec_xml::Limits = vmsec_xml::Limits {
    max_bytes: 1024 * 1024,
    max_depth: 32,
    max_attributes_per_element: 32,
    max_namespace_declarations: 32,
    max_nodes: 100_000,
};

/// What the hook needs of the domain.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Domain {
    pub uuid: String,
    /// The external TPM backend's socket: swtpm's control socket, `<data socket>.ctrl`.
    pub tpm_control_socket: Option<PathBuf>,
    /// The static DAC label (`+UID:+GID`) QEMU runs as, if the domain sets one.
    pub dac_label: Option<(u32, u32)>,
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

pub(crate) fn parse_domain(xml: &str) -> Result<Domain, String> {
    let doc = vmsec_xml::parse(xml, &LIMITS).map_err(|e| format!("the domain XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "domain" {
        return Err(format!(
            "the domain XML's root is <{}>",
            root.tag_name().name()
        ));
    }
    let uuid = child(root, "uuid")
        .and_then(|n| n.text())
        .map(|t| t.trim().to_owned())
        .ok_or("the domain XML has no <uuid>")?;
    let tpm_control_socket = child(root, "devices")
        .into_iter()
        .flat_map(|d| d.children().filter(|c| c.tag_name().name() == "tpm"))
        .filter_map(|t| child(t, "backend"))
        .filter(|b| b.attribute("type") == Some("external"))
        .filter_map(|b| child(b, "source"))
        .find(|s| s.attribute("type") == Some("unix"))
        .and_then(|s| s.attribute("path"))
        .map(PathBuf::from);
    let dac_label = root
        .children()
        .filter(|c| c.tag_name().name() == "seclabel" && c.attribute("model") == Some("dac"))
        .find_map(|s| child(s, "label").and_then(|l| l.text()))
        .and_then(|l| {
            let (u, g) = l.trim().split_once(':')?;
            Some((
                u.trim_start_matches('+').parse().ok()?,
                g.trim_start_matches('+').parse().ok()?,
            ))
        });
    Ok(Domain {
        uuid,
        tpm_control_socket,
        dac_label,
    })
}

/// The uid and gid of a user in /etc/passwd.
fn passwd_ids(user: &str) -> Option<(u32, u32)> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&user) && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
}

/// Gives the vTPM's sockets to QEMU's user and lets its group into their directory (and only
/// that: the directory is 0710 root:GID, the sockets 0600 UID:GID).
fn hand_over(control: &Path, data: &Path, (uid, gid): (u32, u32)) -> Result<(), CliError> {
    let fail = |p: &Path, e: std::io::Error| {
        CliError::new(format!("cannot give {} to QEMU's user: {e}", p.display()))
    };
    if let Some(dir) = control.parent() {
        std::os::unix::fs::chown(dir, Some(0), Some(gid)).map_err(|e| fail(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o710))
            .map_err(|e| fail(dir, e))?;
    }
    for p in [control, data] {
        if p.exists() {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| fail(p, e))?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| fail(p, e))?;
        }
    }
    Ok(())
}

impl Ctx<'_> {
    pub(super) fn libvirt_hook(
        &self,
        domain: &str,
        op: &str,
        sub_op: &str,
    ) -> Result<(), CliError> {
        let start = match (op, sub_op) {
            ("prepare", "begin") => true,
            ("release", "end") => false,
            _ => return Ok(()),
        };
        let mut xml = String::new();
        use std::io::Read;
        std::io::stdin()
            .take(LIMITS.max_bytes as u64 + 1)
            .read_to_string(&mut xml)
            .map_err(|e| CliError::new(format!("cannot read the domain XML of {domain}: {e}")))?;
        let d = parse_domain(&xml).map_err(CliError::new)?;
        let Ok(vm) = self.service.find_vm(self.me, &d.uuid) else {
            return Ok(()); // not a vmsec VM
        };
        let Some(control) = d.tpm_control_socket else {
            return Ok(()); // no external vTPM
        };
        if !start {
            let location = vmsec_service::vtpm::VtpmLocation::of(&self.data.vtpm_root(), vm.id);
            self.service.tpm_stop(self.me, &vm, &location)?;
            return Ok(());
        }
        let data = control
            .to_str()
            .and_then(|p| p.strip_suffix(".ctrl"))
            .map(PathBuf::from)
            .ok_or_else(|| {
                CliError::new(format!(
                    "domain {domain}: the TPM backend's path {} must be vmsec's control socket, ending in .ctrl",
                    control.display()
                ))
            })?;
        if let Some(dir) = data.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))?;
        }
        self.tpm_start(&vm.id.to_string(), None, Some(data.clone()), None, false)?;
        let ids = d
            .dac_label
            .or_else(|| passwd_ids("libvirt-qemu"))
            .ok_or_else(|| {
                CliError::new("no static DAC label in the domain and no libvirt-qemu user")
            })?;
        hand_over(&control, &data, ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_names_its_uuid_tpm_socket_and_dac_label() {
        let xml = r#"<domain type='qemu'><name>g</name><uuid> 6f1c1b4e-2a7d-4d8e-9a53-0c2f4e5b7a10 </uuid>
          <seclabel type='static' model='dac' relabel='no'><label>+64055:+107</label></seclabel>
          <devices><tpm model='tpm-crb'><backend type='external'><source type='unix' mode='connect' path='/run/vmsec/g/swtpm.sock.ctrl'/></backend></tpm></devices></domain>"#;
        assert_eq!(
            parse_domain(xml).unwrap(),
            Domain {
                uuid: "6f1c1b4e-2a7d-4d8e-9a53-0c2f4e5b7a10".into(),
                tpm_control_socket: Some("/run/vmsec/g/swtpm.sock.ctrl".into()),
                dac_label: Some((64055, 107)),
            }
        );
        let plain = "<domain><uuid>u</uuid><devices><tpm><backend type='emulator'/></tpm></devices></domain>";
        assert_eq!(parse_domain(plain).unwrap().tpm_control_socket, None);
        assert!(parse_domain("<network/>").is_err());
        assert!(parse_domain("<!DOCTYPE d [<!ENTITY x 'y'>]><domain/>").is_err());
    }
}
