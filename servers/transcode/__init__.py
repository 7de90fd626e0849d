"""netcore-transcode: the transcoding worker daemon (docs/transcode.md)."""
