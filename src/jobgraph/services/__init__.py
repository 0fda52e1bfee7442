"""What each Lambda does, independent of the Lambda event shape: handlers parse, then call one of these."""
