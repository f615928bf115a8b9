"""wpclone operator: reconciles WordPressClone and CloneRestore resources."""
