//! Printing results for people (text) or scripts (`--json`, stable field names).

use serde_json::{Value, json};
use vmsec_store::{Job, KpHistoryEntry, SecuritySettings, User, Vm, VmSecurity};

use crate::CliError;

pub struct Out {
    pub json: bool,
}

/// Writes `bytes` to standard output. A reader that went away (`vmsec audit | head -1`)
/// ends the command quietly, as it does for other Unix tools: [`CliError::closed_stdout`].
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::closed_stdout(),
            _ => CliError::new(format!("cannot write to standard output: {e}")),
        })
}

/// `s` safe to print for people: control characters (C0, DEL, C1) and the Unicode controls
/// that reorder or hide text (bidi embeddings, overrides and isolates, marks) are shown as
/// `\u{…}` escapes, so a stored name cannot move the cursor, recolour the terminal, start a
/// line of its own or reverse the text after it. JSON output is not passed through this:
/// serde_json escapes the C0 controls itself and scripts get the exact string.
pub fn text(s: &str) -> std::borrow::Cow<'_, str> {
    fn hostile(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(hostile) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hostile(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

impl Out {
    /// Prints `text` for people, or `v` as JSON.
    pub fn either(
        &self,
        text: impl FnOnce() -> String,
        v: impl FnOnce() -> Value,
    ) -> Result<(), CliError> {
        write_stdout(self.render(text, v)?.as_bytes())
    }

    /// What [`Out::either`] prints, for a command whose output another process prints.
    pub fn render(
        &self,
        text: impl FnOnce() -> String,
        v: impl FnOnce() -> Value,
    ) -> Result<String, CliError> {
        if self.json {
            let s = serde_json::to_string_pretty(&v())
                .map_err(|e| CliError::new(format!("JSON output: {e}")))?;
            Ok(format!("{s}\n"))
        } else {
            let t = text();
            if t.is_empty() {
                return Ok(String::new());
            }
            Ok(format!("{}\n", t.trim_end()))
        }
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    vmsec_store::rfc3339::format(t)
}

pub fn user_json(u: &User) -> Value {
    json!({ "name": u.name, "role": u.role, "created": rfc3339(u.created) })
}

pub fn vm_json(vm: &Vm) -> Value {
    json!({ "id": vm.id, "name": vm.name, "created": rfc3339(vm.created) })
}

pub fn settings_json(s: &SecuritySettings) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

pub fn settings_text(s: &SecuritySettings) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    format!(
        "TpmEnabled                         {}\n\
         ShieldingRequested                 {}\n\
         EncryptStateAndVmMigrationTraffic  {}\n\
         KsdEnabled                         {}\n\
         DataProtectionRequested            {}\n\
         VirtualizationBasedSecurityOptOut  {}\n\
         BindToHostTpm                      {}\n\
         AppContainerLaunchOptOut           {}\n",
        on(s.tpm_enabled),
        on(s.shielding_requested),
        on(s.encrypt_state_and_vm_migration_traffic),
        on(s.ksd_enabled),
        on(s.data_protection_requested),
        on(s.virtualization_based_security_opt_out),
        on(s.bind_to_host_tpm),
        on(s.app_container_launch_opt_out),
    )
}

pub fn security_json(vm: &Vm, sec: &VmSecurity) -> Value {
    let blob = |b: &Option<Vec<u8>>| match b {
        Some(b) => json!({ "present": true, "bytes": b.len() }),
        None => json!({ "present": false }),
    };
    let mut kp = blob(&sec.key_protector);
    if let (Some(p), Some(o)) = (&sec.key_protector_set, kp.as_object_mut()) {
        o.insert("set_by".into(), json!(p.by));
        o.insert("set_at".into(), json!(rfc3339(p.at)));
    }
    json!({
        "vm": vm_json(vm),
        "instance_id": vmsec_service::setting_data::instance_id(vm.id),
        "settings": settings_json(&sec.settings),
        "key_protector": kp,
        "last_known_good": blob(&sec.last_known_good),
        "last_known_good_is_current": sec.last_known_good.is_some() && sec.last_known_good == sec.key_protector,
        "security_policy": blob(&sec.security_policy),
        "vtpm_state_key_sealed": sec.sealed_state_key.is_some(),
    })
}

pub fn security_text(vm: &Vm, sec: &VmSecurity) -> String {
    let blob = |b: &Option<Vec<u8>>| match b {
        Some(b) => format!("{} bytes", b.len()),
        None => "none".into(),
    };
    let mut t = format!(
        "VM            {}\nId            {}\nInstanceID    {}\nCreated       {}\n\n{}\n",
        text(&vm.name),
        vm.id,
        vmsec_service::setting_data::instance_id(vm.id),
        rfc3339(vm.created),
        settings_text(&sec.settings)
    );
    t.push_str(&format!(
        "KeyProtector               {}",
        blob(&sec.key_protector)
    ));
    if let Some(p) = &sec.key_protector_set {
        t.push_str(&format!(" (set by {} at {})", text(&p.by), rfc3339(p.at)));
    }
    t.push('\n');
    let lkg = match (
        &sec.last_known_good,
        sec.last_known_good == sec.key_protector,
    ) {
        (None, _) => "none".to_string(),
        (Some(_), true) => "same as current".to_string(),
        (Some(b), false) => format!("{} bytes (differs from current)", b.len()),
    };
    t.push_str(&format!("LastKnownGoodKeyProtector  {lkg}\n"));
    t.push_str(&format!(
        "SecurityPolicy             {}\n",
        blob(&sec.security_policy)
    ));
    t
}

pub fn job_json(j: &Job) -> Value {
    json!({
        "instance_id": j.instance_id,
        "method": j.method,
        "vm": j.vm,
        "job_state": j.state.code(),
        "job_state_name": j.state.name(),
        "error_code": j.error_code,
        "error_description": j.error_description,
        "percent_complete": j.percent_complete,
        "submitted_by": j.submitted_by,
        "time_submitted": rfc3339(j.time_submitted),
        "start_time": j.start_time.map(rfc3339),
        "finish_time": j.finish_time.map(rfc3339),
    })
}

pub fn job_text(j: &Job) -> String {
    let mut t = format!(
        "{}  {}  {} ({})  {}%",
        text(&j.instance_id),
        text(&j.method),
        j.state.name(),
        j.state.code(),
        j.percent_complete
    );
    if j.error_code != 0 {
        t.push_str(&format!(
            "  error {}: {}",
            j.error_code,
            text(&j.error_description)
        ));
    }
    t
}

pub fn history_json(h: &KpHistoryEntry) -> Value {
    json!({
        "bytes": h.key_protector.len(),
        "set_by": h.set.as_ref().map(|p| &p.by),
        "set_at": h.set.as_ref().map(|p| rfc3339(p.at)),
        "replaced_by": h.replaced.by,
        "replaced_at": rfc3339(h.replaced.at),
    })
}

fn cert_lines(label: &str, c: &vmsec_service::CertView) -> String {
    format!(
        "  {label} certificate: {}\n    thumbprint (SHA-1)  {}\n    SHA-256             {}\n    valid               {} to {}\n    key                 RSA {}\n",
        text(&c.subject),
        c.thumbprint,
        c.sha256_fingerprint,
        rfc3339(c.not_before),
        rfc3339(c.not_after),
        c.key_bits
    )
}

pub fn guardian_text(g: &vmsec_service::GuardianView) -> String {
    format!(
        "{}{}\n{}{}",
        text(&g.name),
        if g.has_private_keys {
            " (private keys here)"
        } else {
            ""
        },
        cert_lines("encryption", &g.encryption_certificate),
        cert_lines("signing", &g.signing_certificate)
    )
}

pub fn inspection_json(i: &vmsec_service::Inspection) -> Value {
    json!({
        "wrappings": i.wrappings,
        "signed_by": i.signed_by,
        "verified": i.verified.is_ok(),
        "verify_error": i.verified.as_ref().err(),
        "unwrapped_here": i.unwrapped_here.as_ref().map(|r| r.is_ok()),
        "unwrap_error": i.unwrapped_here.as_ref().and_then(|r| r.as_ref().err()),
    })
}

pub fn inspection_text(i: &vmsec_service::Inspection) -> String {
    let mut t = String::new();
    for w in &i.wrappings {
        let role = if w.is_owner {
            "owner".to_string()
        } else {
            format!("guardian (parent {})", w.parent_id)
        };
        t.push_str(&format!("wrapping {}: {role}", w.id));
        match (&w.local_guardian, w.private_keys_here) {
            (Some(n), true) => t.push_str(&format!(" = {} (private keys here)", text(n))),
            (Some(n), false) => t.push_str(&format!(" = {}", text(n))),
            (None, _) => {}
        }
        t.push('\n');
        if let Some(c) = &w.encryption_certificate {
            t.push_str(&cert_lines("encryption", c));
        }
        if let Some(c) = &w.signing_certificate {
            t.push_str(&cert_lines("signing", c));
        }
    }
    t.push_str(&match &i.verified {
        Ok(()) => format!(
            "signatures: certificate signatures and GuardianSignature (by wrapping {}) verified\n",
            i.signed_by
        ),
        Err(e) => format!("signatures: FAILED: {e}\n"),
    });
    t.push_str(&match &i.unwrapped_here {
        None => "transport key: no guardian of this host can unwrap it\n".to_string(),
        Some(Ok(())) => {
            "transport key: unwrapped here; TransportKeySignature verified\n".to_string()
        }
        Some(Err(e)) => format!("transport key: unwrap FAILED: {e}\n"),
    });
    t
}

/// Who the key protector lets run the VM: each wrapping's guardian (this host's name for it,
/// if any), its signing certificate's SHA-1 thumbprint, and whether this host holds its keys.
pub fn grants_json(i: &vmsec_service::Inspection) -> Value {
    json!(
        i.wrappings
            .iter()
            .map(|w| json!({
                "id": w.id,
                "role": if w.is_owner { "owner" } else { "guardian" },
                "guardian": w.local_guardian,
                "thumbprint": w.signing_certificate.as_ref().map(|c| c.thumbprint.clone()),
                "private_keys_here": w.private_keys_here,
            }))
            .collect::<Vec<_>>()
    )
}

pub fn grants_text(i: &vmsec_service::Inspection) -> String {
    let mut t = String::from("Granted to (by the current key protector):\n");
    for w in &i.wrappings {
        t.push_str(&format!(
            "  {:<8} {:<24} {}{}\n",
            if w.is_owner { "owner" } else { "guardian" },
            w.local_guardian
                .as_deref()
                .map(text)
                .unwrap_or("(not a guardian of this host)".into()),
            w.signing_certificate
                .as_ref()
                .map(|c| c.thumbprint.as_str())
                .unwrap_or("-"),
            if w.private_keys_here {
                "  private keys here"
            } else {
                ""
            },
        ));
    }
    t
}
