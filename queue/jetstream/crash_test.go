package jetstream_test

const crashChildEnv = "CREW_JETSTREAM_CRASH_CHILD"

func crashChild(spec string) int { return 2 }
