//! The messages of envd's `process.Process` and `filesystem.Filesystem` services in their
//! protobuf JSON form (lowerCamelCase names, the proto names also accepted, bytes as base64,
//! 64-bit integers as strings, enums by name), as the SDKs' JSON codec writes and reads them.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Protobuf `bytes`: base64 in JSON (standard or URL-safe, padded or not, on input).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct B64(pub Vec<u8>);

impl Serialize for B64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.trim_end_matches('=').replace('-', "+").replace('_', "/");
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s.as_bytes())
            .map(B64)
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// An enum value given by name or by number.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EnumValue {
    Name(String),
    Number(i32),
}

// ---- process.Process ----

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessConfig {
    #[serde(default)]
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub envs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct PtySize {
    #[serde(default)]
    pub cols: u32,
    #[serde(default)]
    pub rows: u32,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Pty {
    #[serde(default)]
    pub size: Option<PtySize>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRequest {
    pub process: Option<ProcessConfig>,
    #[serde(default)]
    pub pty: Option<Pty>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub stdin: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProcessSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct SelectorRequest {
    pub process: Option<ProcessSelector>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct UpdateRequest {
    pub process: Option<ProcessSelector>,
    #[serde(default)]
    pub pty: Option<Pty>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ProcessInput {
    #[serde(default)]
    pub stdin: Option<B64>,
    #[serde(default)]
    pub pty: Option<B64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct SendInputRequest {
    pub process: Option<ProcessSelector>,
    pub input: Option<ProcessInput>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SendSignalRequest {
    pub process: Option<ProcessSelector>,
    #[serde(default)]
    pub signal: Option<EnumValue>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProcessInfo {
    pub config: ProcessConfig,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ListResponse {
    pub processes: Vec<ProcessInfo>,
}

/// One event of a process stream (`StartResponse`/`ConnectResponse` carry it as `event`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProcessEvent {
    Start { pid: u32 },
    Data(DataEvent),
    End(EndEvent),
    Keepalive {},
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DataEvent {
    Stdout(B64),
    Stderr(B64),
    Pty(B64),
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndEvent {
    pub exit_code: i32,
    pub exited: bool,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventResponse {
    pub event: ProcessEvent,
}

// ---- filesystem.Filesystem ----

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PathRequest {
    #[serde(default)]
    pub path: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct MoveRequest {
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub destination: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListDirRequest {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub depth: u32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchRequest {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
    #[serde(default, alias = "include_entry")]
    pub include_entry: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatcherRequest {
    #[serde(default, alias = "watcher_id")]
    pub watcher_id: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub path: String,
    /// int64: a string in protobuf JSON.
    pub size: String,
    pub mode: u32,
    pub permissions: String,
    pub owner: String,
    pub group: String,
    pub modified_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EntryResponse {
    pub entry: EntryInfo,
}

#[derive(Clone, Debug, Serialize)]
pub struct ListDirResponse {
    pub entries: Vec<EntryInfo>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilesystemEvent {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntryInfo>,
}

/// The events of `WatchDir` other than `filesystem` (which is sent as it is).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WatchEvent {
    Start {},
    Keepalive {},
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateWatcherResponse {
    pub watcher_id: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct WatcherEventsResponse {
    pub events: Vec<FilesystemEvent>,
}

/// An empty message.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_use_protobuf_json() {
        let e = EventResponse { event: ProcessEvent::Data(DataEvent::Stdout(B64(b"hi\n".to_vec()))) };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"event":{"data":{"stdout":"aGkK"}}}"#);
        let end = EndEvent { exit_code: 3, exited: true, status: "exit status 3".into(), error: None };
        let s = serde_json::to_string(&EventResponse { event: ProcessEvent::End(end) }).unwrap();
        assert_eq!(s, r#"{"event":{"end":{"exitCode":3,"exited":true,"status":"exit status 3"}}}"#);
        let s = serde_json::to_string(&EventResponse { event: ProcessEvent::Start { pid: 7 } }).unwrap();
        assert_eq!(s, r#"{"event":{"start":{"pid":7}}}"#);
        let r: SendInputRequest = serde_json::from_str(r#"{"process":{"pid":7},"input":{"stdin":"aGk"}}"#).unwrap();
        assert_eq!(r.input.unwrap().stdin.unwrap().0, b"hi");
        let r: SendSignalRequest =
            serde_json::from_str(r#"{"process":{"tag":"t"},"signal":"SIGNAL_SIGKILL"}"#).unwrap();
        assert_eq!(r.signal, Some(EnumValue::Name("SIGNAL_SIGKILL".into())));
        let r: SendSignalRequest = serde_json::from_str(r#"{"process":{"pid":1},"signal":15}"#).unwrap();
        assert_eq!(r.signal, Some(EnumValue::Number(15)));
        assert!(serde_json::from_str::<B64>(r#""not base64!""#).is_err());
    }
}
