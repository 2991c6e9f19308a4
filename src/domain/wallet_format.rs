//! A credential's format (docs/wallet.md#configuration), re-exported as
//! `domain::wallet::Format`: its name in the configuration, the request's
//! DCQL query, the stored challenge and the metric rows, written once
//! here.

/// A format a wallet may present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// SD-JWT VC: named by its `vct` values.
    SdJwt,
    /// An ISO mdoc: named by its doctype, its claims under one namespace.
    Mdoc,
}

impl Format {
    /// Every format, in the order the metric rows and errors list them.
    pub const ALL: [Format; 2] = [Format::SdJwt, Format::Mdoc];

    /// The format's name in the configuration, requests and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::SdJwt => "dc+sd-jwt",
            Format::Mdoc => "mso_mdoc",
        }
    }

    /// The format [`Format::as_str`] names.
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// The short name a stored challenge keeps.
    pub fn stored(self) -> &'static str {
        match self {
            Format::SdJwt => "sd",
            Format::Mdoc => "md",
        }
    }

    /// The format [`Format::stored`] names.
    pub fn from_stored(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.stored() == name)
    }

    /// The names accepted by [`Format::parse`], for an error.
    pub fn listed() -> String {
        let names: Vec<String> = Format::ALL
            .iter()
            .map(|f| format!("\"{}\"", f.as_str()))
            .collect();
        names.join(" or ")
    }
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn each_format_reads_back_from_its_name_and_its_stored_name() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
            assert_eq!(Format::from_stored(f.stored()), Some(f));
        }
        assert_eq!(Format::parse("vc+sd-jwt"), None);
        assert_eq!(Format::from_stored("dc+sd-jwt"), None);
        assert_eq!(Format::listed(), "\"dc+sd-jwt\" or \"mso_mdoc\"");
    }
}
