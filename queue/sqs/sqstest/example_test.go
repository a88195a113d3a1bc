package sqstest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/crewgo/crew/queue/sqs/sqstest"
)

// A test starts an emulator, creates its queues, and talks to them with
// the emulator's client (in a test, use Start and CreateQueue, which stop
// the emulator and fail the test for you).
func ExampleStartServer() {
	srv, err := sqstest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	url, err := srv.Create(context.Background(), "jobs", 5)
	if err != nil {
		log.Fatal(err)
	}
	out, err := srv.Client().SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: new("hello")})
	fmt.Println(url == srv.Endpoint+"/"+sqstest.Account+"/jobs", out.MessageId != nil, err)
	// Output: true true <nil>
}
