//! [`every!`]: an enum of plain variants declared with its `ALL`, every
//! variant in the order declared, made from the one list, so that no
//! list of the variants can miss one that is added (the metric series,
//! the parsers of names and the registry's checks read `ALL`;
//! docs/decisions/0720-a-list-of-every-variant-is-made-from-its-enum.md).

/// Declares the enum as written and `ALL`, its every variant in order.
macro_rules! every {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $v:ident,)+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $v,)+
        }

        impl $name {
            /// Every variant, in the order declared (made by `every!`,
            /// so none is missing).
            pub const ALL: [$name; [$(stringify!($v)),+].len()] = [$($name::$v),+];
        }
    };
}

pub(crate) use every;

#[cfg(test)]
mod tests {
    super::every! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Count {
            /// The first.
            One,
            Two,
            Three,
        }
    }

    #[test]
    fn all_holds_every_variant_in_the_order_declared() {
        assert_eq!(Count::ALL, [Count::One, Count::Two, Count::Three]);
    }
}
