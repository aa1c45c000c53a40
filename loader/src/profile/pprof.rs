//! The pprof profile format (`profile.proto` of github.com/google/pprof, the
//! messages and fields used here), gzip-compressed as `go tool pprof` and Polar
//! Signals read it. The messages are written out with prost's derive rather than
//! generated at build time: they are few and the format is stable.
use std::collections::HashMap;
use std::io::Write;

use flate2::write::GzEncoder;
use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// Leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Innermost (inlined) function first; the last is the function it was inlined into.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

/// Builds a [`Profile`]: strings, functions, mappings and locations each added once.
#[derive(Default)]
pub struct Builder {
    pub profile: Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(String, String), u64>,
    mappings: HashMap<String, u64>,
}

impl Builder {
    pub fn new(sample_types: &[(&str, &str)], period: (&str, &str, i64), comments: &[String]) -> Builder {
        let mut b = Builder::default();
        b.string("");
        b.profile.sample_type = sample_types.iter().map(|(t, u)| ValueType { r#type: b.string(t), unit: b.string(u) }).collect();
        b.profile.period_type = Some(ValueType { r#type: b.string(period.0), unit: b.string(period.1) });
        b.profile.period = period.2;
        b.profile.default_sample_type = b.profile.sample_type.last().map(|t| t.r#type).unwrap_or(0);
        b.profile.comment = comments.iter().map(|c| b.string(c)).collect();
        b.profile.time_nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
        b
    }

    pub fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    pub fn function(&mut self, name: &str, file: &str) -> u64 {
        if let Some(&id) = self.functions.get(&(name.to_owned(), file.to_owned())) {
            return id;
        }
        let id = self.profile.function.len() as u64 + 1;
        let (n, f) = (self.string(name), self.string(file));
        self.profile.function.push(Function { id, name: n, system_name: n, filename: f });
        self.functions.insert((name.to_owned(), file.to_owned()), id);
        id
    }

    /// A mapping, once per `key` (a file in one dump's process).
    pub fn mapping(&mut self, key: &str, m: Mapping, filename: &str, build_id: &str) -> u64 {
        if let Some(&id) = self.mappings.get(key) {
            return id;
        }
        let id = self.profile.mapping.len() as u64 + 1;
        let (f, b) = (self.string(filename), self.string(build_id));
        self.profile.mapping.push(Mapping { id, filename: f, build_id: b, ..m });
        self.mappings.insert(key.to_owned(), id);
        id
    }

    pub fn location(&mut self, mapping_id: u64, address: u64, line: Vec<Line>) -> u64 {
        let id = self.profile.location.len() as u64 + 1;
        self.profile.location.push(Location { id, mapping_id, address, line });
        id
    }

    /// The profile, encoded and gzipped.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&self.profile.encode_to_vec())?;
        gz.finish()
    }
}
