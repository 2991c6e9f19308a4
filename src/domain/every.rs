//! [`every!`]: an enum declared with its `ALL`, every value in the order
//! declared, made from the one list, so that no list of the values can
//! miss one that is added (the metric series, the parsers of names and
//! the registry's checks read `ALL`;
//! docs/decisions/0720-a-list-of-every-variant-is-made-from-its-enum.md).
//! A variant is plain, or holds one value of a type that has an `ALL` of
//! its own (`Link(Page)`): `ALL` holds it once for each of that type's,
//! so a value added there is in this `ALL` too
//! (docs/decisions/0830-a-page-s-link-message-is-one-purpose.md).

/// Declares the enum as written and `ALL`, its every value in order. The
/// enum is `Copy`.
macro_rules! every {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $v:ident $(($t:ty))?,)+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $v $(($t))?,)+
        }

        impl $name {
            /// Every value, in the order declared (made by `every!`, so
            /// none is missing): a variant holding a value, once for each
            /// of its type's `ALL`.
            pub const ALL: [$name; 0 $(+ $crate::domain::every::every!(@len $($t)?))+] = {
                const N: usize = 0 $(+ $crate::domain::every::every!(@len $($t)?))+;
                let mut out: [Option<$name>; N] = [None; N];
                let mut i = 0;
                $($crate::domain::every::every!(@put out i $name $v $($t)?);)+
                assert!(i == N, "every!: a value counted but not listed");
                let mut all = [match out[0] {
                    Some(v) => v,
                    None => panic!("every!: an enum without a value"),
                }; N];
                let mut k = 0;
                while k < N {
                    all[k] = match out[k] {
                        Some(v) => v,
                        None => panic!("every!: a value left out"),
                    };
                    k += 1;
                }
                all
            };
        }
    };
    (@len) => { 1 };
    (@len $t:ty) => { <$t>::ALL.len() };
    (@put $out:ident $i:ident $name:ident $v:ident) => {
        $out[$i] = Some($name::$v);
        $i += 1;
    };
    (@put $out:ident $i:ident $name:ident $v:ident $t:ty) => {
        let mut j = 0;
        while j < <$t>::ALL.len() {
            $out[$i] = Some($name::$v(<$t>::ALL[j]));
            $i += 1;
            j += 1;
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

    super::every! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Held {
            Before,
            /// One for each `Count`.
            Of(Count),
            After,
        }
    }

    #[test]
    fn all_holds_every_variant_in_the_order_declared() {
        assert_eq!(Count::ALL, [Count::One, Count::Two, Count::Three]);
    }

    #[test]
    fn a_variant_holding_a_value_is_in_all_once_for_each_of_its_type_s() {
        assert_eq!(
            Held::ALL,
            [
                Held::Before,
                Held::Of(Count::One),
                Held::Of(Count::Two),
                Held::Of(Count::Three),
                Held::After,
            ]
        );
    }
}
