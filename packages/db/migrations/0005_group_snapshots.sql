CREATE TABLE "group_snapshots" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"user_id" text NOT NULL,
	"name" varchar(255) DEFAULT '' NOT NULL,
	"description" varchar(255) DEFAULT '' NOT NULL,
	"status" text NOT NULL,
	"status_reason" text DEFAULT '' NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "group_snapshots_project_created_idx" ON "group_snapshots" USING btree ("project_id","created_at","id");--> statement-breakpoint
CREATE INDEX "snapshots_group_idx" ON "snapshots" USING btree ("group_snapshot_id") WHERE group_snapshot_id <> '';