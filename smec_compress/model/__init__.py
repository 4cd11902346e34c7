"""The model: the SMEC estimator (``head``), its training loop (``train``) over the chain of
stages (``chain``), ADS (``ads``), S-XBM (``memory``), the losses, and PCA, its initialisation."""
