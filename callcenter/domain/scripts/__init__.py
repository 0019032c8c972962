"""Talk scripts' pure parts: the model, a script being walked, the context, forbidden wording."""
