"""Data files shipped with infarctsam."""
