package sqs_test

const crashChildEnv = "CREW_SQS_CRASH_CHILD"

func crashChild(spec string) int { return 0 }
