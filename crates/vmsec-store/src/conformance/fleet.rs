//! Hosts and vTPM leases, as one host sees them (several hosts: the PostgreSQL tests).

use std::time::Duration;

use crate::*;

use super::{set_kp, vm};

const TTL: Duration = Duration::from_secs(30);

/// The host that opened the store is listed among the hosts, and touching it moves its
/// last-seen time forward.
pub fn the_opening_host_is_listed_and_touching_it_is_seen(s: &dyn Store) {
    let me = s.host().unwrap();
    s.touch_host().unwrap();
    let first = s.hosts().unwrap();
    let mine = first.iter().find(|h| h.guid == me.guid).expect("listed");
    assert_eq!(mine.name, me.name);
    std::thread::sleep(Duration::from_millis(5));
    s.touch_host().unwrap();
    let again = s.hosts().unwrap();
    let later = again.iter().find(|h| h.guid == me.guid).unwrap();
    assert!(later.last_seen > mine.last_seen);
}

/// A lease is this host's until it expires; renewing keeps its token and moves its expiry,
/// and the reader sees who holds it.
pub fn a_lease_is_taken_renewed_and_released_by_its_host(s: &dyn Store) {
    let v = vm("leased");
    s.add_vm(&v).unwrap();
    let me = s.host().unwrap();
    assert_eq!(s.vm_lease(v.id).unwrap(), None);
    let lease = s.acquire_vm_lease(v.id, TTL).unwrap();
    assert_eq!((lease.vm, lease.host), (v.id, me.guid));
    let info = s.vm_lease(v.id).unwrap().unwrap();
    assert_eq!(
        (info.lease.clone(), info.host_name.as_str(), info.expired),
        (lease.clone(), me.name.as_str(), false)
    );
    std::thread::sleep(Duration::from_millis(5));
    let renewed = s.renew_vm_lease(&lease, TTL).unwrap();
    assert_eq!(renewed.token, lease.token);
    assert!(renewed.expires > lease.expires);
    assert!(s.release_vm_lease(v.id, None).unwrap());
    assert!(!s.release_vm_lease(v.id, None).unwrap());
    assert_eq!(s.vm_lease(v.id).unwrap(), None);
    assert!(matches!(
        s.renew_vm_lease(&renewed, TTL),
        Err(StoreError::LeaseLost(_))
    ));
}

/// Taking a lease again gives a greater token, and the old token is fenced off: it can no
/// longer renew, nor fence a write.
pub fn a_new_lease_fences_off_the_old_token(s: &dyn Store) {
    let v = vm("fenced");
    s.add_vm(&v).unwrap();
    let old = s.acquire_vm_lease(v.id, TTL).unwrap();
    let new = s.acquire_vm_lease(v.id, TTL).unwrap();
    assert!(new.token > old.token);
    assert!(matches!(
        s.renew_vm_lease(&old, TTL),
        Err(StoreError::LeaseLost(_))
    ));
    let write = |lease: &VmLease, kp: &[u8]| {
        s.update_vm_security_fenced(v.id, "t", lease, &mut |sec| {
            sec.key_protector = Some(kp.to_vec());
            Ok(())
        })
    };
    assert!(matches!(
        write(&old, b"stale"),
        Err(UpdateError::Store(StoreError::LeaseLost(_)))
    ));
    assert_eq!(
        s.vm_security(v.id).unwrap().key_protector,
        None,
        "nothing written"
    );
    write(&new, b"current").unwrap();
    assert_eq!(
        s.vm_security(v.id).unwrap().key_protector.as_deref(),
        Some(&b"current"[..])
    );
}

/// An expired lease fences nothing and renews nothing; the VM can be leased again.
pub fn an_expired_lease_is_lost(s: &dyn Store) {
    let v = vm("expiring");
    s.add_vm(&v).unwrap();
    let lease = s.acquire_vm_lease(v.id, Duration::from_millis(1)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(s.vm_lease(v.id).unwrap().unwrap().expired);
    assert!(matches!(
        s.renew_vm_lease(&lease, TTL),
        Err(StoreError::LeaseLost(_))
    ));
    let fenced = s.update_vm_security_fenced(v.id, "t", &lease, &mut |_| Ok(()));
    assert!(matches!(
        fenced,
        Err(UpdateError::Store(StoreError::LeaseLost(_)))
    ));
    let again = s.acquire_vm_lease(v.id, TTL).unwrap();
    assert!(again.token > lease.token);
}

/// Leases are of VMs the store knows, and go with the VM.
pub fn a_lease_is_of_a_known_vm_and_goes_with_it(s: &dyn Store) {
    assert!(matches!(
        s.acquire_vm_lease(uuid::Uuid::new_v4(), TTL),
        Err(StoreError::NotFound(_))
    ));
    let v = vm("removed");
    s.add_vm(&v).unwrap();
    set_kp(s, v.id, "t", Some(b"kp"));
    s.acquire_vm_lease(v.id, TTL).unwrap();
    assert!(s.remove_vm(v.id).unwrap());
    assert_eq!(s.vm_lease(v.id).unwrap(), None);
}
