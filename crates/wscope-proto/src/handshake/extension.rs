//! TEMPORARY STUB: replaced by the real Sec-WebSocket-Extensions parser.
use crate::Error;
use std::fmt;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    pub params: Vec<ExtensionParam>,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionParam {
    pub name: String,
    pub value: Option<String>,
}
pub fn parse_extensions(header_value: &str) -> Result<Vec<Extension>, Error> {
    let mut out = Vec::new();
    for ext in header_value.split(',') {
        let mut parts = ext.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(Error::Extension("empty".into()));
        }
        let params = parts
            .map(|p| {
                let mut kv = p.splitn(2, '=');
                ExtensionParam {
                    name: kv.next().unwrap_or_default().trim().to_owned(),
                    value: kv.next().map(|v| v.trim().trim_matches('"').to_owned()),
                }
            })
            .collect();
        out.push(Extension { name, params });
    }
    Ok(out)
}
impl Extension {
    pub fn param(&self, name: &str) -> Option<&ExtensionParam> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }
}
impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for p in &self.params {
            match &p.value {
                Some(v) => write!(f, "; {}={}", p.name, v)?,
                None => write!(f, "; {}", p.name)?,
            }
        }
        Ok(())
    }
}
