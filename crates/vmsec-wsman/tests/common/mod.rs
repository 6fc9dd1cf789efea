//! A small in-memory provider and helpers shared by the integration tests.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use vmsec_cim::{CimDateTime, CimType, Instance, Value};
use vmsec_wsman::{
    AuthRefusal, Enumeration, Listed, MethodOutput, OutValue, Principal, Provider, ProviderError,
    Remembered,
};

pub const SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
pub const WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
pub const WSEN: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration";
pub const WSMANFAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";
pub const V2: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/";

/// One recorded provider call.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    Get {
        class: String,
        selectors: Vec<(String, String)>,
    },
    Enumerate {
        class: String,
        filter: Vec<(String, String)>,
    },
    References {
        association: String,
        role: String,
        target: Vec<(String, String)>,
    },
    Invoke {
        user: String,
        method: String,
        selectors: Vec<(String, String)>,
        input: Vec<(String, Value)>,
    },
}

pub struct TestProvider {
    pub calls: Mutex<Vec<Call>>,
    pub key_protector: Mutex<Vec<u8>>,
    pub vm_count: usize,
    /// How long `get` takes, to keep a request in flight.
    pub get_delay: std::time::Duration,
    /// How long `authenticate` takes, as a password hash does.
    pub auth_delay: std::time::Duration,
    /// Users `authenticate` accepted; `authenticate_verified` accepts only these.
    pub verified: Mutex<Vec<String>>,
    /// Calls of `authenticate` (the slow check) and of `authenticate_verified` that decided.
    pub logins: Mutex<Logins>,
    /// Users whose password changed since `authenticate` accepted them: `confirm` refuses
    /// them, and `get` refuses their remembered credentials.
    pub revoked: Mutex<Vec<String>>,
    /// Calls of `confirm`.
    pub confirms: AtomicUsize,
    /// Whether `Msvm_ComputerSystem` instances are all made at Enumerate ([`Listed`]) rather
    /// than as they are pulled ([`Made`]).
    pub read_at_once: bool,
    /// `Msvm_ComputerSystem` instances made so far by enumerations.
    pub made: Arc<AtomicUsize>,
    /// The instance number at which the next enumeration's source fails, once.
    pub fail_at: Option<usize>,
    /// Whether `enumerate` returns every instance, as a provider that does not push the
    /// filter down would.
    pub ignore_filter: bool,
    /// Whether the next `get` panics after it is recorded in `calls` (once).
    pub panic_once: std::sync::atomic::AtomicBool,
}

/// `Msvm_ComputerSystem` instances `next..=last` matching `filter`, made as they are asked
/// for, two at a time at most (a source that reads in pages).
pub struct Made {
    next: usize,
    last: usize,
    filter: Vec<(String, String)>,
    made: Arc<AtomicUsize>,
    fail_at: Option<usize>,
}

impl Enumeration for Made {
    fn next(&mut self, n: usize) -> Result<Vec<Instance>, ProviderError> {
        let mut out = Vec::new();
        while out.len() < n.min(2) && self.next <= self.last {
            if self.fail_at.take_if(|at| *at == self.next).is_some() {
                return Err(ProviderError::Internal("the disk failed".into()));
            }
            let inst = computer_system(self.next);
            self.next += 1;
            self.made.fetch_add(1, Ordering::SeqCst);
            if matches(&inst, &self.filter) {
                out.push(inst);
            }
        }
        Ok(out)
    }

    fn heap_bytes(&self) -> usize {
        0
    }
}

fn matches(i: &Instance, filter: &[(String, String)]) -> bool {
    filter.iter().all(|(n, v)| {
        i.value(n)
            .and_then(Value::scalar_text)
            .is_some_and(|t| t.eq_ignore_ascii_case(v))
    })
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Logins {
    pub checked: usize,
    pub known: usize,
}

impl TestProvider {
    pub fn new() -> TestProvider {
        TestProvider {
            calls: Mutex::new(Vec::new()),
            key_protector: Mutex::new(b"<Protector/>".to_vec()),
            vm_count: 3,
            get_delay: std::time::Duration::ZERO,
            auth_delay: std::time::Duration::ZERO,
            verified: Mutex::new(Vec::new()),
            logins: Mutex::new(Logins::default()),
            revoked: Mutex::new(Vec::new()),
            confirms: AtomicUsize::new(0),
            read_at_once: false,
            made: Arc::new(AtomicUsize::new(0)),
            fail_at: None,
            ignore_filter: false,
            panic_once: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// `Msvm_ComputerSystem` instances made so far by enumerations.
    pub fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }

    /// (calls of `authenticate`, calls of `authenticate_verified` that decided).
    pub fn logins(&self) -> (usize, usize) {
        let l = self.logins.lock().unwrap();
        (l.checked, l.known)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

pub fn security_service() -> Instance {
    Instance::new("Msvm_SecurityService")
        .with(
            "CreationClassName",
            CimType::String,
            Value::String("Msvm_SecurityService".into()),
        )
        .with(
            "Name",
            CimType::String,
            Value::String("vmsecuritywmi".into()),
        )
        .with(
            "SystemCreationClassName",
            CimType::String,
            Value::String("Msvm_ComputerSystem".into()),
        )
        .with("SystemName", CimType::String, Value::String("HV01".into()))
        .with(
            "ElementName",
            CimType::String,
            Value::String("Security Service".into()),
        )
        .with("EnabledState", CimType::UInt16, Value::UInt16(2))
        .with("OtherEnabledState", CimType::String, Value::Null)
        .with(
            "InstallDate",
            CimType::DateTime,
            Value::DateTime("20240102030405.000000+000".parse::<CimDateTime>().unwrap()),
        )
}

pub const HGS: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/windows/hgs/";

/// An `MSFT_HgsClientConfiguration` of a host in local mode.
pub fn hgs_client_configuration() -> Instance {
    Instance::new("MSFT_HgsClientConfiguration")
        .with("Mode", CimType::String, Value::String("Local".into()))
        .with("IsHostGuarded", CimType::Boolean, Value::Boolean(false))
}

pub fn computer_system(i: usize) -> Instance {
    let (name, description) = if i == 0 {
        ("HV01".to_owned(), "Microsoft Hosting Computer System")
    } else {
        (
            format!("5B0E2E2B-7F77-4B39-9A43-0A5F0D3C9E1{i}"),
            "Microsoft Virtual Machine",
        )
    };
    Instance::new("Msvm_ComputerSystem")
        .with(
            "CreationClassName",
            CimType::String,
            Value::String("Msvm_ComputerSystem".into()),
        )
        .with("Name", CimType::String, Value::String(name))
        .with(
            "ElementName",
            CimType::String,
            Value::String(format!("vm-{i} <&>")),
        )
        .with(
            "Description",
            CimType::String,
            Value::String(description.into()),
        )
        .with("EnabledState", CimType::UInt16, Value::UInt16(2))
}

/// The security service's association with VM `i`'s computer system.
pub fn service_affects_element(i: usize) -> Instance {
    let name = computer_system(i)
        .value("Name")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    let cs = vmsec_cim::ObjectPath::new("Msvm_ComputerSystem")
        .in_namespace("root/virtualization/v2")
        .with_key(
            "CreationClassName",
            Value::String("Msvm_ComputerSystem".into()),
        )
        .with_key("Name", Value::String(name));
    let service = vmsec_cim::ObjectPath::new("Msvm_SecurityService")
        .in_namespace("root/virtualization/v2")
        .with_key(
            "CreationClassName",
            Value::String("Msvm_SecurityService".into()),
        )
        .with_key("Name", Value::String("vmsecuritywmi".into()))
        .with_key(
            "SystemCreationClassName",
            Value::String("Msvm_ComputerSystem".into()),
        )
        .with_key("SystemName", Value::String("HV01".into()));
    Instance::new("Msvm_ServiceAffectsElement")
        .with("AffectedElement", CimType::Reference, Value::Reference(cs))
        .with(
            "AffectingElement",
            CimType::Reference,
            Value::Reference(service),
        )
}

impl Provider for TestProvider {
    fn authenticate(
        &self,
        user: &str,
        password: &str,
        _peer: IpAddr,
    ) -> Result<Principal, AuthRefusal> {
        self.logins.lock().unwrap().checked += 1;
        std::thread::sleep(self.auth_delay);
        let ok = matches!(user, "admin" | "reader")
            && password == "secret"
            && !self.revoked.lock().unwrap().iter().any(|u| u == user);
        if ok {
            self.verified.lock().unwrap().push(user.into());
        }
        ok.then(|| Principal {
            user: user.into(),
            role: String::new(),
            remembered: None,
        })
        .ok_or(AuthRefusal::Rejected)
    }

    fn authenticate_verified(&self, user: &str, password: &str, _: IpAddr) -> Option<Principal> {
        let known = password == "secret" && self.verified.lock().unwrap().iter().any(|u| u == user);
        if known {
            self.logins.lock().unwrap().known += 1;
        }
        known.then(|| Principal {
            user: user.into(),
            role: String::new(),
            remembered: Some(Remembered::new(7)),
        })
    }

    fn confirm(&self, who: &Principal) -> Result<(), AuthRefusal> {
        self.confirms.fetch_add(1, Ordering::SeqCst);
        assert_eq!(who.remembered.as_ref().map(|r| r.stamp), Some(7));
        if self.revoked.lock().unwrap().contains(&who.user) {
            Err(AuthRefusal::Rejected)
        } else {
            Ok(())
        }
    }

    fn get(
        &self,
        who: &Principal,
        class: &str,
        selectors: &[(String, String)],
    ) -> Result<Instance, ProviderError> {
        self.calls.lock().unwrap().push(Call::Get {
            class: class.into(),
            selectors: selectors.to_vec(),
        });
        if self.panic_once.swap(false, Ordering::SeqCst) {
            panic!("the test provider fails once, as asked");
        }
        // As a provider whose point read confirms the caller in the same transaction.
        if let Some(r) = &who.remembered {
            if self.revoked.lock().unwrap().contains(&who.user) {
                r.refused();
                return Err(ProviderError::AccessDenied);
            }
            r.confirmed("");
        }
        match class {
            "Msvm_SecurityService" => {
                if selectors.is_empty()
                    || selectors
                        .iter()
                        .any(|(n, v)| n == "Name" && v == "vmsecuritywmi")
                {
                    Ok(security_service())
                } else {
                    Err(ProviderError::NoSuchInstance)
                }
            }
            "Msvm_ComputerSystem" => (0..=self.vm_count)
                .map(computer_system)
                .find(|i| {
                    selectors.iter().any(|(n, v)| {
                        n == "Name" && i.value("Name").and_then(Value::as_str) == Some(v)
                    })
                })
                .ok_or(ProviderError::NoSuchInstance),
            "Msvm_ConcreteJob" => Err(ProviderError::Internal("job store offline".into())),
            "MSFT_HgsClientConfiguration" if selectors.is_empty() => Ok(hgs_client_configuration()),
            other => Err(ProviderError::NoSuchClass(other.into())),
        }
    }

    fn enumerate(
        &self,
        _who: &Principal,
        class: &str,
        filter: &[(String, String)],
    ) -> Result<Box<dyn Enumeration>, ProviderError> {
        self.calls.lock().unwrap().push(Call::Enumerate {
            class: class.into(),
            filter: filter.to_vec(),
        });
        let filter = if self.ignore_filter { &[][..] } else { filter };
        let all: Vec<Instance> = match class {
            "Msvm_ComputerSystem" if !self.read_at_once => {
                return Ok(Box::new(Made {
                    next: 0,
                    last: self.vm_count,
                    filter: filter.to_vec(),
                    made: self.made.clone(),
                    fail_at: self.fail_at,
                }));
            }
            "Msvm_ComputerSystem" => (0..=self.vm_count).map(computer_system).collect(),
            "Msvm_SecurityService" => vec![security_service()],
            "MSFT_HgsClientConfiguration" => vec![hgs_client_configuration()],
            _ => Vec::new(),
        };
        Ok(Box::new(Listed::new(
            all.into_iter().filter(|i| matches(i, filter)).collect(),
        )))
    }

    /// `Msvm_ServiceAffectsElement` only: the security service affects every VM, and one
    /// more, removed since (its computer system is no longer there to get).
    fn references(
        &self,
        _who: &Principal,
        association: &str,
        role: &str,
        _target_class: &str,
        target: &[(String, String)],
    ) -> Result<Box<dyn Enumeration>, ProviderError> {
        self.calls.lock().unwrap().push(Call::References {
            association: association.into(),
            role: role.into(),
            target: target.to_vec(),
        });
        let link = |i: usize| service_affects_element(i);
        let found: Vec<Instance> = match (association, role) {
            ("Msvm_ServiceAffectsElement", "AffectingElement") => {
                (1..=self.vm_count + 1).map(link).collect()
            }
            ("Msvm_ServiceAffectsElement", "AffectedElement") => (1..=self.vm_count)
                .filter(|&i| {
                    let name = computer_system(i).value("Name").cloned();
                    target.iter().any(|(k, v)| {
                        k == "Name" && name.as_ref().and_then(Value::as_str) == Some(v)
                    })
                })
                .map(link)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Box::new(Listed::new(found)))
    }

    fn invoke(
        &self,
        who: &Principal,
        _class: &str,
        selectors: &[(String, String)],
        method: &str,
        input: &[(String, Value)],
    ) -> Result<MethodOutput, ProviderError> {
        self.calls.lock().unwrap().push(Call::Invoke {
            user: who.user.clone(),
            method: method.into(),
            selectors: selectors.to_vec(),
            input: input.to_vec(),
        });
        if who.user == "reader" && method != "GetKeyProtector" {
            return Err(ProviderError::AccessDenied);
        }
        let ssd = input
            .iter()
            .find(|(n, _)| n == "SecuritySettingData")
            .map(|(_, v)| v.clone());
        if ssd.as_ref().and_then(Value::as_str) == Some("bad") {
            return Err(ProviderError::InvalidParameter(
                "SecuritySettingData is not an instance".into(),
            ));
        }
        match method {
            "GetKeyProtector" => Ok(MethodOutput {
                return_value: 0,
                out: vec![(
                    "KeyProtector".into(),
                    OutValue::Value(Value::Array(
                        self.key_protector
                            .lock()
                            .unwrap()
                            .iter()
                            .map(|b| Value::UInt8(*b))
                            .collect(),
                    )),
                )],
            }),
            "StartService" | "StopService" => Ok(MethodOutput {
                return_value: 0,
                out: vec![],
            }),
            _ => Ok(MethodOutput {
                return_value: 4096,
                out: vec![(
                    "Job".into(),
                    OutValue::JobRef {
                        instance_id: "5B0E2E2B-0000-4B39-9A43-JOB".into(),
                    },
                )],
            }),
        }
    }

    fn metrics_extra(&self) -> String {
        "vmsec_jobs{state=\"running\"} 0\n".into()
    }
}

pub fn testdata(name: &str) -> String {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Elements named (`ns`, `local`) anywhere in `doc`.
pub fn find_all<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
    ns: &str,
    local: &str,
) -> Vec<roxmltree::Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.has_tag_name((ns, local)))
        .collect()
}

/// Text of the first element named (`ns`, `local`).
pub fn text(doc: &roxmltree::Document<'_>, ns: &str, local: &str) -> Option<String> {
    doc.descendants()
        .find(|n| n.has_tag_name((ns, local)))
        .map(|n| n.text().unwrap_or("").to_owned())
}
