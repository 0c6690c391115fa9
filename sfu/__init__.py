"""Selective forwarding unit for classroom voice and video (filled by the SFU issue)."""
