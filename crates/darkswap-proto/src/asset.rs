use std::{fmt, str::FromStr};

/// A tradable asset: bitcoin, a rune or an alkane.
///
/// The text form is canonical and is what orders carry on the wire:
/// `BTC`, `rune:<block>:<tx>` or `alkane:<block>:<tx>`, with plain decimal
/// numbers (no sign, no leading zeros), so one asset has exactly one spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Asset {
    /// Bitcoin, in satoshis.
    Btc,
    /// A rune, by the block and transaction index of its etching.
    Rune {
        /// Block height of the etching.
        block: u64,
        /// Transaction index within that block.
        tx: u32,
    },
    /// An alkane, by its `block:tx` id.
    Alkane {
        /// Block part of the alkane id.
        block: u64,
        /// Transaction part of the alkane id.
        tx: u64,
    },
}

/// Why a string is not a valid [`Asset`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssetError {
    /// Not `BTC` and no known `kind:` prefix.
    #[error("unknown asset {0:?}: expected BTC, rune:<block>:<tx> or alkane:<block>:<tx>")]
    Unknown(String),
    /// A known prefix but not followed by `<block>:<tx>`.
    #[error("asset {0:?} must have the form <kind>:<block>:<tx>")]
    Shape(String),
    /// A number that is empty, has a sign, a leading zero or does not fit.
    #[error("asset {0:?} has an invalid number {1:?}")]
    Number(String, String),
}

fn parse_number<T: FromStr>(whole: &str, part: &str) -> Result<T, AssetError> {
    let canonical = !part.is_empty()
        && part.bytes().all(|b| b.is_ascii_digit())
        && (part == "0" || !part.starts_with('0'));
    if !canonical {
        return Err(AssetError::Number(whole.to_owned(), part.to_owned()));
    }
    part.parse()
        .map_err(|_| AssetError::Number(whole.to_owned(), part.to_owned()))
}

impl FromStr for Asset {
    type Err = AssetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "BTC" {
            return Ok(Asset::Btc);
        }
        let Some((kind, rest)) = s.split_once(':') else {
            return Err(AssetError::Unknown(s.to_owned()));
        };
        if kind != "rune" && kind != "alkane" {
            return Err(AssetError::Unknown(s.to_owned()));
        }
        let Some((block, tx)) = rest.split_once(':') else {
            return Err(AssetError::Shape(s.to_owned()));
        };
        let block = parse_number(s, block)?;
        Ok(match kind {
            "rune" => Asset::Rune {
                block,
                tx: parse_number(s, tx)?,
            },
            _ => Asset::Alkane {
                block,
                tx: parse_number(s, tx)?,
            },
        })
    }
}

impl fmt::Display for Asset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Asset::Btc => f.write_str("BTC"),
            Asset::Rune { block, tx } => write!(f, "rune:{block}:{tx}"),
            Asset::Alkane { block, tx } => write!(f, "alkane:{block}:{tx}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!("BTC".parse(), Ok(Asset::Btc));
        assert_eq!(
            "rune:840000:3".parse(),
            Ok(Asset::Rune {
                block: 840_000,
                tx: 3
            })
        );
        assert_eq!("alkane:2:0".parse(), Ok(Asset::Alkane { block: 2, tx: 0 }));
    }

    #[test]
    fn rejects_non_canonical_and_unknown() {
        for bad in [
            "",
            "btc",
            "ETH",
            "rune",
            "rune:",
            "rune:1",
            "rune:1:",
            "rune::1",
            "rune:01:1",
            "rune:1:+1",
            "rune:-1:1",
            "rune:1:1:1",
            "rune:1:4294967296",
            "alkane:1:x",
            "alkane:18446744073709551616:0",
            " BTC",
            "rune:1 :1",
        ] {
            assert!(bad.parse::<Asset>().is_err(), "{bad:?} should be rejected");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(block in any::<u64>(), tx in any::<u32>(), tx64 in any::<u64>()) {
            for asset in [Asset::Btc, Asset::Rune { block, tx }, Asset::Alkane { block, tx: tx64 }] {
                prop_assert_eq!(asset.to_string().parse::<Asset>(), Ok(asset));
            }
        }
    }
}
