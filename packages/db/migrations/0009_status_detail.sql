ALTER TABLE "snapshots" ADD COLUMN "status_detail" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "status_detail" text DEFAULT '' NOT NULL;