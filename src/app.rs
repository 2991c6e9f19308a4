//! Building and serving the app. (Implementation pending.)
