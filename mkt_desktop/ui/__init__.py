"""Qt widgets only. They call `mkt_desktop.library`, never `mkt_core` directly."""
