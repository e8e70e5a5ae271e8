"""Result files: the crash-safe case log, the versioned run document, baselines."""
