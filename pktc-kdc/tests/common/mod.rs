//! Client-side helpers for the KDC's integration tests: a dev realm with
//! the password principal's key, and valid requests to start from.
#![allow(dead_code)]

use krb::client::{self, Credentials, RequestBody, TgsAuth};
use krb::crypto::{EncType, Key};
use krb::msg::consts::padata;
use krb::msg::flags::Flags;
use krb::msg::{self, ApReq, AsReq, TgsReq, time};
use krb::principal::Principal;
use testkit::DevKdc;

pub const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");
pub const AES256: EncType = EncType::Aes256CtsHmacSha196;

pub struct Realm {
    pub kdc: DevKdc,
    pub client: Principal,
    pub key: Key,
    pub tgs: Principal,
    pub service: Principal,
}

impl Realm {
    pub fn start(kdc: DevKdc) -> Realm {
        let (name, password) = kdc.password();
        let client = Principal::parse(&name, None).unwrap();
        let key = Key::from_password(AES256, password.as_bytes(), &client.salt(), None).unwrap();
        let tgs = Principal::krbtgt(&kdc.get("realm"));
        let service = Principal::parse(&kdc.get("service_principal"), None).unwrap();
        Realm {
            kdc,
            client,
            key,
            tgs,
            service,
        }
    }

    pub fn body<'a>(
        &'a self,
        server: &'a Principal,
        nonce: u32,
        options: Flags,
    ) -> RequestBody<'a> {
        RequestBody {
            client: Some(&self.client),
            server,
            etypes: &[AES256, EncType::Aes128CtsHmacSha196],
            nonce,
            till: time::now().0 + 3600,
            rtime: None,
            options,
        }
    }

    /// A valid AS-REQ with PA-ENC-TIMESTAMP taken at `now + ts_offset`.
    pub fn as_req(&self, nonce: u32, ts_offset: i64, options: Flags) -> Vec<u8> {
        let (now, usec) = time::now();
        let pa = client::enc_timestamp(&self.key, now + ts_offset, usec).unwrap();
        client::as_req(&self.body(&self.tgs, nonce, options), vec![pa]).unwrap()
    }

    pub fn as_req_with(&self, nonce: u32, edit: impl FnOnce(&mut AsReq)) -> Vec<u8> {
        let mut req: AsReq =
            msg::decode("AS-REQ", &self.as_req(nonce, 0, client::default_options())).unwrap();
        edit(&mut req);
        msg::encode("AS-REQ", &req).unwrap()
    }

    pub fn tgt(&self, options: Flags) -> Credentials {
        let nonce = rand_nonce();
        let reply = self.kdc.udp(&self.as_req(nonce, 0, options));
        client::open_as_rep(&reply, &self.key, nonce).expect("AS exchange")
    }

    pub fn tgs_req(
        &self,
        tgt: &Credentials,
        server: &Principal,
        nonce: u32,
        skew: i64,
        options: Flags,
    ) -> Vec<u8> {
        let (now, usec) = time::now();
        let auth = TgsAuth {
            now: now + skew,
            usec,
            subkey: None,
        };
        client::tgs_req(tgt, &self.body(server, nonce, options), &auth).unwrap()
    }

    pub fn tgs_req_with(
        &self,
        tgt: &Credentials,
        nonce: u32,
        edit: impl FnOnce(&mut TgsReq),
    ) -> Vec<u8> {
        let bytes = self.tgs_req(tgt, &self.service, nonce, 0, client::default_options());
        let mut req: TgsReq = msg::decode("TGS-REQ", &bytes).unwrap();
        edit(&mut req);
        msg::encode("TGS-REQ", &req).unwrap()
    }
}

pub fn rand_nonce() -> u32 {
    let k = Key::random(EncType::Aes128CtsHmacSha196);
    u32::from_be_bytes(k.bytes()[..4].try_into().unwrap()) & 0x7fff_ffff
}

pub fn error_code(reply: &[u8]) -> i32 {
    client::krb_error(reply)
        .unwrap_or_else(|| {
            panic!(
                "expected a KRB-ERROR, got {:02x?}",
                &reply[..reply.len().min(16)]
            )
        })
        .error_code
}

pub fn edit_ap_req(req: &mut TgsReq, edit: impl FnOnce(&mut ApReq)) {
    let pa = req
        .0
        .padata
        .as_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p.r#type == padata::TGS_REQ)
        .unwrap();
    let mut ap: ApReq = msg::decode("AP-REQ", &pa.value).unwrap();
    edit(&mut ap);
    pa.value = msg::encode("AP-REQ", &ap).unwrap().into();
}

pub fn tail(kdc: &DevKdc) -> String {
    let log = kdc.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// The workspace root (deploy/, docs/ and bench/ are read from there).
pub fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A file of the workspace, by its path from the root.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// The `--config` path of the Containerfile's ENTRYPOINT (exec form).
pub fn entrypoint_config_path() -> String {
    let file = read("deploy/container/Containerfile");
    let line = file
        .lines()
        .find(|l| l.starts_with("ENTRYPOINT "))
        .expect("Containerfile ENTRYPOINT");
    let args: Vec<String> =
        serde_json::from_str(line.trim_start_matches("ENTRYPOINT ")).expect("exec-form ENTRYPOINT");
    assert_eq!(args[..2], ["/usr/bin/pktc-kdc", "serve"]);
    let i = args.iter().position(|a| a == "--config").expect("--config");
    args[i + 1].clone()
}
