//! What the demo's bot says, in its conversation's one language, English
//! or Spanish, as the gateway's texts in that conversation are
//! (docs/api.md#languages). A count takes the form ICU4X's plural rules
//! choose for the language ("1 attempt left", "2 attempts left").
use icu_locale_core::{locale, Locale};
use icu_plurals::{PluralCategory, PluralRules};

/// A demo conversation's language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    En,
    Es,
}

impl Lang {
    /// Its BCP 47 tag, as the gateway is asked for it.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    /// The language the customer asked for by typing its name, if any.
    pub fn asked(lower: &str) -> Option<Lang> {
        match lower {
            "español" | "espanol" | "spanish" => Some(Lang::Es),
            "english" | "inglés" | "ingles" => Some(Lang::En),
            _ => None,
        }
    }

    fn locale(self) -> Locale {
        match self {
            Lang::En => locale!("en"),
            Lang::Es => locale!("es"),
        }
    }

    /// Whether `n` takes the language's singular form ("one").
    fn one(self, n: u64) -> bool {
        PluralRules::try_new_cardinal((&self.locale()).into())
            .map(|rules| rules.category_for(n) == PluralCategory::One)
            .unwrap_or(n == 1)
    }
}

/// What the bot says, without a value in it.
#[derive(Clone, Copy, Debug)]
pub enum Say {
    Greeting,
    Switched,
    CannotSwitch,
    CannotSignIn,
    WalletAsked,
    CodeSent,
    PageSent,
    AskFirst,
    CodeUsedUp,
    Help,
    Verified,
    AlreadyVerified,
}

/// `what` in `lang`.
pub fn say(lang: Lang, what: Say) -> &'static str {
    match lang {
        Lang::En => english(what),
        Lang::Es => spanish(what),
    }
}

fn english(what: Say) -> &'static str {
    match what {
        Say::Greeting => "Hi, I'm the Acme Bank assistant. Before I can look at your account I need to know it's you: sign in, let me send you a code, or prove it with your wallet.",
        Say::Switched => "OK, we'll carry on in English.",
        Say::CannotSwitch => "Sorry, I cannot switch language right now.",
        Say::CannotSignIn => "Sorry, I cannot send a sign-in link right now.",
        Say::WalletAsked => "Open the link, share your ID from your wallet, then type here the code it shows you.",
        Say::CodeSent => "I've sent a code to your phone by text message. Please type it here.",
        Say::PageSent => "I've sent a code to your phone by text message. Type it on the page the link opens, then type here the code that page shows you.",
        Say::AskFirst => "Ask me to send you a code, or prove it with your wallet, first.",
        Say::CodeUsedUp => "That code cannot be used any more. Ask me for a new one.",
        Say::Help => "I can help once you're verified: choose \"Sign in\", \"Send me a code\" or \"Prove it with your wallet\".",
        Say::Verified => "verified ✓ — thank you! How can I help with your account today?",
        Say::AlreadyVerified => "You're already verified ✓. How can I help with your account?",
    }
}

fn spanish(what: Say) -> &'static str {
    match what {
        Say::Greeting => "Hola, soy el asistente de Acme Bank. Antes de mirar tu cuenta necesito saber que eres tú: inicia sesión, deja que te envíe un código o demuéstralo con tu cartera digital.",
        Say::Switched => "Vale, seguimos en español.",
        Say::CannotSwitch => "Lo siento, ahora no puedo cambiar de idioma.",
        Say::CannotSignIn => "Lo siento, ahora no puedo enviarte un enlace para iniciar sesión.",
        Say::WalletAsked => "Abre el enlace, comparte tu identificación desde tu cartera digital y escribe aquí el código que te muestre.",
        Say::CodeSent => "Te he enviado un código por SMS a tu teléfono. Escríbelo aquí.",
        Say::PageSent => "Te he enviado un código por SMS a tu teléfono. Escríbelo en la página que abre el enlace y luego escribe aquí el código que te muestre esa página.",
        Say::AskFirst => "Primero pídeme que te envíe un código, o demuéstralo con tu cartera digital.",
        Say::CodeUsedUp => "Ese código ya no se puede usar. Pídeme uno nuevo.",
        Say::Help => "Puedo ayudarte en cuanto estés verificado: elige «Iniciar sesión», «Envíame un código» o «Demostrarlo con mi cartera».",
        Say::Verified => "verificado ✓ — ¡gracias! ¿En qué puedo ayudarte con tu cuenta?",
        Say::AlreadyVerified => "Ya estás verificado ✓. ¿En qué puedo ayudarte con tu cuenta?",
    }
}

/// A wrong code, with the attempts left.
pub fn wrong_code(lang: Lang, left: u64) -> String {
    match (lang, lang.one(left)) {
        (Lang::En, true) => format!("That code is not right; {left} attempt left."),
        (Lang::En, false) => format!("That code is not right; {left} attempts left."),
        (Lang::Es, true) => format!("Ese código no es correcto; te queda {left} intento."),
        (Lang::Es, false) => format!("Ese código no es correcto; te quedan {left} intentos."),
    }
}

/// Verification blocked (too many wrong codes or requests) until `until`
/// (`HH:MM UTC`), when the gateway said.
pub fn blocked(lang: Lang, until: Option<&str>) -> String {
    match (lang, until) {
        (Lang::En, Some(t)) => format!("Too many attempts: verification is blocked until {t}. Try again then."),
        (Lang::En, None) => "Too many attempts: verification is blocked for now. Try again later.".into(),
        (Lang::Es, Some(t)) => format!("Demasiados intentos: la verificación está bloqueada hasta las {t}. Inténtalo de nuevo entonces."),
        (Lang::Es, None) => "Demasiados intentos: la verificación está bloqueada por ahora. Inténtalo más tarde.".into(),
    }
}

/// The gateway refused to start a proof, for `why` (its words).
pub fn cannot(lang: Lang, why: &str) -> String {
    match lang {
        Lang::En => format!("Sorry, I cannot do that right now ({why})."),
        Lang::Es => format!("Lo siento, ahora no puedo hacerlo ({why})."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_attempt_is_singular_in_both_languages() {
        assert_eq!(
            wrong_code(Lang::En, 1),
            "That code is not right; 1 attempt left."
        );
        assert_eq!(
            wrong_code(Lang::En, 2),
            "That code is not right; 2 attempts left."
        );
        assert!(wrong_code(Lang::Es, 1).ends_with("te queda 1 intento."));
        assert!(wrong_code(Lang::Es, 4).ends_with("te quedan 4 intentos."));
        // Zero is plural in both (CLDR): "0 attempts", "0 intentos".
        assert!(wrong_code(Lang::En, 0).contains("0 attempts"));
        assert!(wrong_code(Lang::Es, 0).contains("0 intentos"));
    }

    #[test]
    fn a_block_says_when_it_ends() {
        let en = blocked(Lang::En, Some("14:05 UTC"));
        assert!(en.contains("until 14:05 UTC"), "{en}");
        let es = blocked(Lang::Es, Some("14:05 UTC"));
        assert!(es.contains("hasta las 14:05 UTC"), "{es}");
    }
}
